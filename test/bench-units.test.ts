// The bench's parsers and reports on fixed inputs: wrk's report, /proc lines, HTTP response
// framing, same-round ratios, the issues' bars, the configs it writes for each proxy, and
// callgrind's output as the instruction counter reads it.
import t from 'tap';
import { parseWrkOutput } from '../bench/load/wrk';
import { responseEnd } from '../bench/load/fixed-rate-worker';
import { parseStat, parseRssBytes } from '../bench/proc';
import { median, percentileSorted } from '../bench/stats';
import { summarize, computeBars, renderMarkdown, renderSvg } from '../bench/report';
import { policyYaml, tracingEnv } from '../bench/scenarios/pillion';
import { nginxConfig, haproxyConfig } from '../bench/scenarios/native-proxies';
import { ensurePrograms } from '../bench/setup';
import { retryOnAddressInUse } from '../bench/child';
import { decodePolicyText } from '../proxy/config';
import type { BenchResults, RoundSample, ScenarioResult } from '../bench/results';
import { coreSplit, summarizeSideBySide, SideBySideRound } from '../bench/side-by-side';
import { category, perfMapResolver, selfCosts } from '../bench/instructions';

function sbRound(round: number, candidate: number, baseline: number, candidateCpu: number, baselineCpu: number): SideBySideRound {
  return { round, candidate: { requests: candidate, cpuPer1k: candidateCpu, errors: 0 }, baseline: { requests: baseline, cpuPer1k: baselineCpu, errors: 0 } };
}

const WRK = `Running 2s test @ http://127.0.0.1:40000/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   505.76us  757.87us  16.61ms   96.02%
    Req/Sec    78.82k    18.41k   95.71k    93.33%
  Latency Distribution
     50%  366.00us
     75%  414.00us
     90%    1.61ms
     99%    1.02s
  234455 requests in 3.00s, 36.22MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  78127.89
Transfer/sec:     12.07MB
`;

t.test('wrk report: rate, count, percentiles in their units, errors', async (t) => {
  const r = parseWrkOutput(WRK);
  t.equal(r.requestsPerSecond, 78127.89);
  t.equal(r.requests, 234455);
  t.equal(r.p50Ms, 0.366);
  t.equal(r.p90Ms, 1.61);
  t.equal(r.p99Ms, 1020);
  t.equal(r.errors, 12);
  t.throws(() => parseWrkOutput('unable to connect to 127.0.0.1:1 Connection refused'), /Requests\/sec/);
});

t.test('/proc parsing survives spaces and parentheses in the command name', async (t) => {
  const fields = ['S', '41', '42', '42', '0', '-1', '4194304', '100', '0', '0', '0', '1234', '66'];
  const st = parseStat(`4242 (node (bench) x) ${fields.join(' ')} 0 0 20 0 1`);
  t.equal(st.ppid, 41);
  t.equal(st.cpuTicks, 1234 + 66);
  t.equal(parseRssBytes('Name:\tnode\nVmRSS:\t   51200 kB\nThreads: 7\n'), 51200 * 1024);
  t.equal(parseRssBytes('Name:\tkthread\n'), 0);
});

t.test('response framing: content-length, chunked, incomplete, close', async (t) => {
  const cl = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1');
  t.same(responseEnd(cl), { end: cl.indexOf('hello') + 5, status: 200, close: false });
  t.equal(responseEnd(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel')), undefined);
  t.equal(responseEnd(Buffer.from('HTTP/1.1 200 OK\r\nContent-Le')), undefined);
  const chunked = Buffer.from('HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
  t.same(responseEnd(chunked), { end: chunked.length, status: 503, close: true });
  t.equal(responseEnd(chunked.subarray(0, chunked.length - 2)), undefined);
});

t.test('median and nearest-rank percentiles', async (t) => {
  t.equal(median([3, 1, 2]), 2);
  t.equal(median([4, 1, 2, 3]), 2.5);
  t.ok(Number.isNaN(median([])));
  const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  t.equal(percentileSorted(sorted, 50), 50);
  t.equal(percentileSorted(sorted, 99), 99);
  t.equal(percentileSorted(sorted, 100), 100);
});

function sample(round: number, rps: number, p50 = 1, cpu?: number): RoundSample {
  return {
    round,
    throughput: { requestsPerSecond: rps, requests: rps * 10, p50Ms: p50, p90Ms: p50 * 2, p99Ms: p50 * 3, errors: 0 },
    fixedRate: { scheduled: 1000, completed: 1000, errors: 0, achievedRate: 1000, p50Ms: p50, p90Ms: p50 * 2, p99Ms: p50 * 4, maxMs: 9, generatorCpuSeconds: 0.1, generatorCpuShare: 0.05 },
    ...(cpu === undefined ? {} : { throughputCpuPer1k: cpu, fixedRateCpuPer1k: cpu * 2, rssMb: 50 }),
  };
}

function scenario(name: string, samples: RoundSample[]): ScenarioResult {
  const all = new Map([[name, samples]]);
  return { name, label: name, hops: name === 'direct' ? 0 : 1, status: 'ok', samples, summary: summarize(name, all) };
}

t.test('ratios are taken within a round, then the median over rounds', async (t) => {
  // Round 2 is slow for everyone (a noisy neighbour): paired ratios stay at 0.5.
  const samples = new Map<string, RoundSample[]>([
    ['direct', [sample(0, 1000, 0.2), sample(1, 200, 0.2), sample(2, 1000, 0.2)]],
    ['http-proxy', [sample(0, 500, 1, 0.1), sample(1, 100, 1, 0.1), sample(2, 500, 1, 0.1)]],
    ['pillion', [sample(0, 450, 1.5, 0.2), sample(1, 90, 1.5, 0.2), { round: 2, error: 'boom' }]],
  ]);
  const s = summarize('pillion', samples)!;
  t.equal(s.rounds, 2, 'failed rounds are left out');
  t.equal(s.rps, 270);
  t.equal(s.rpsMin, 90);
  t.equal(s.rpsMax, 450);
  t.equal(s.fixed.generatorCpuShare, 0.05);
  t.equal(s.vsDirect, 0.45);
  t.equal(s.vsHttpProxy, 0.9);
  t.ok(Number.isNaN(s.vsNginx), 'no nginx in this run');
  t.equal(s.fixed.addedP50Ms, 1.3);
  t.equal(s.cpuPer1k.throughput, 0.2);
  t.equal(s.rssMb, 50);
  t.equal(summarize('nginx', samples), undefined);
});

t.test('bars: issue 2 and 4 from this run, unmeasured ones say so', async (t) => {
  const results = [
    scenario('direct', [sample(0, 1000)]),
    scenario('http-proxy', [sample(0, 500, 1, 0.1)]),
    scenario('pillion', [sample(0, 440, 1, 0.2)]),
    scenario('pillion-trace-1', [sample(0, 430, 1, 0.25)]),
  ];
  const all = new Map(results.map((r) => [r.name, r.samples]));
  const fixed = results.map((r) => ({ ...r, summary: summarize(r.name, all) }));
  const bars = computeBars(fixed, { status: 'ok', points: [{ proxies: 1000, applies: 20, medianMs: 42, worstMs: 90, rssMb: 80 }] });
  const find = (re: RegExp) => bars.find((b) => re.test(b.what))!;
  t.equal(find(/vs bare http-proxy/).display, 'one after the other 0.88x (by CPU per request: 0.50x)');
  t.equal(find(/vs bare http-proxy/).pass, false);
  t.equal(find(/resident memory/).pass, true);
  t.equal(find(/1% sampling/).pass, true);
  t.equal(find(/1% sampling/).display, 'one after the other 2.3% (by CPU per request: 20.0%)');
  t.equal(find(/vs no policies/).display, 'not measured');
  t.equal(find(/vs no policies/).pass, undefined);
  t.equal(find(/1000 proxies/).pass, true);
  t.equal(find(/100 proxies/).display, 'not measured');


  // A side-by-side reading, when there is one, is what the bar is judged on; both are shown.
  const sbs = [
    summarizeSideBySide({ candidate: 'pillion', baseline: 'http-proxy' }, [
      sbRound(0, 930, 1000, 0.21, 0.2), sbRound(1, 910, 1000, 0.22, 0.2), sbRound(2, 990, 1000, 0.2, 0.2),
    ]),
    summarizeSideBySide({ candidate: 'pillion-trace-1', baseline: 'pillion' }, [sbRound(0, 900, 1000, 0.25, 0.2)]),
  ];
  t.equal(sbs[0]!.ratio, 0.93);
  t.equal(sbs[0]!.ratioMin, 0.91);
  t.equal(sbs[0]!.ratioMax, 0.99);
  const judged = computeBars(fixed, { status: 'skipped', points: [] }, sbs);
  const findJ = (re: RegExp) => judged.find((b) => re.test(b.what))!;
  t.equal(findJ(/vs bare http-proxy/).pass, true, 'met side by side although 0.88x one after the other');
  t.match(findJ(/vs bare http-proxy/).display, /^one after the other 0\.88x .*; side by side 0\.93x \(rounds 0\.91x–0\.99x; by CPU per request: 0\.95x\)$/);
  t.equal(findJ(/1% sampling/).pass, false, '10% cost side by side');
  t.match(findJ(/1% sampling/).display, /side by side 10\.0% \(rounds 10\.0%–10\.0%; by CPU per request: 20\.0%\)/);
  t.equal(summarizeSideBySide({ candidate: 'a', baseline: 'b' }, [sbRound(0, 0, 100, NaN, 1)]).status, 'failed', 'a side that completed nothing is no reading');

  const res: BenchResults = {
    format: 1, startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:01:00Z', command: 'pillion bench', quick: false,
    machine: { cpuModel: 'Test CPU', cores: 2, memoryGiB: 24, node: 'v20', kernel: '6', os: 'Debian', tools: {} },
    setup: { installed: [], note: undefined },
    settings: {
      rounds: 1, warmupSeconds: 1,
      throughput: { tool: 'wrk', threads: 1, connections: 32, seconds: 10, responseBytes: 12 },
      fixedRate: { tool: 'bench/load/fixed-rate-worker', rate: 1000, connections: 16, seconds: 10, responseBytes: 1024 },
    },
    scenarios: [...fixed, { name: 'nginx', label: 'nginx', hops: 1, status: 'skipped', reason: 'not installed', samples: [] }],
    convergence: { status: 'skipped', reason: 'not there', points: [] },
    sideBySide: sbs,
    bars, load: { min: 0.5, median: 1.5, max: 3 }, otlpSink: { exportRequests: 3, bytes: 100 },
  };
  const md = renderMarkdown(res, 'latest.svg');
  t.match(md, /\| pillion \| 1 \| 440 \| 0\.44x \| 0\.88x \| – \|/);
  t.match(md, /- nginx: skipped: not installed/);
  t.match(md, /\| pillion \| http-proxy \| 3 \| 0\.93x \| 0\.91x–0\.99x \| 0\.95x \|/);
  t.match(md, /Test CPU, 2 cores/);
  t.match(md, /load average during the run was 1\.5 \(0\.5–3\.0\)/);
  const svg = renderSvg(res);
  t.match(svg, /^<svg /);
  t.match(svg, />pillion-trace-1</);
  t.notMatch(svg, />nginx</, 'skipped scenarios are not drawn');
});

t.test('side by side: the proxies get core 0, everything else the rest', async (t) => {
  t.same(coreSplit(2, true), { proxies: '0', others: '1' });
  t.same(coreSplit(8, true), { proxies: '0', others: '1-7' });
  t.equal(coreSplit(1, true), undefined, 'one core: nothing to split');
  t.equal(coreSplit(4, false), undefined, 'no taskset: not pinned');
});

t.test('the Pillion configs the bench writes are valid TrafficPolicies', async (t) => {
  const [none] = decodePolicyText(policyYaml(4000, 'none'));
  t.same(none!.endpoints, [{ host: '127.0.0.1', port: 4000 }]);
  t.equal(none!.rateLimit, undefined);
  const [local] = decodePolicyText(policyYaml(4001, 'local'));
  t.equal(local!.rateLimit?.scope, 'local');
  t.ok(local!.rateLimit!.requestsPerSecond >= 1_000_000, 'the bucket never trips under bench load');
  t.equal(local!.retries.attempts, 2);
  t.ok(local!.circuitBreaker);
  t.equal(decodePolicyText(policyYaml(4001, 'global'))[0]!.rateLimit?.scope, 'global');
});

t.test('tracing modes set only the standard OTEL variables', async (t) => {
  process.env.OTEL_TRACES_SAMPLER_ARG = '0.5';
  try {
    const one = tracingEnv('1%', 'http://127.0.0.1:4318');
    t.equal(one.OTEL_TRACES_SAMPLER, 'traceidratio');
    t.equal(one.OTEL_TRACES_SAMPLER_ARG, '0.01');
    t.equal(one.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://127.0.0.1:4318');
    t.equal(tracingEnv('100%', 'x').OTEL_TRACES_SAMPLER_ARG, '1');
    const off = tracingEnv('off', 'x');
    t.equal(off.OTEL_SDK_DISABLED, 'true');
    t.equal(off.OTEL_TRACES_SAMPLER_ARG, undefined, 'inherited OTEL settings are dropped');
  } finally {
    delete process.env.OTEL_TRACES_SAMPLER_ARG;
  }
});

t.test('nginx and HAProxy configs: one worker/thread, pooled upstream connections', async (t) => {
  const n = nginxConfig('/tmp/x', 8080, 9090);
  t.match(n, /worker_processes 1;/);
  t.match(n, /server 127\.0\.0\.1:9090;\s+keepalive \d+;/);
  t.match(n, /listen 127\.0\.0\.1:8080;/);
  t.match(n, /proxy_set_header Connection "";/);
  const h = haproxyConfig(8080, 9090);
  t.match(h, /nbthread 1/);
  t.match(h, /http-reuse always/);
  t.match(h, /bind 127\.0\.0\.1:8080/);
  t.match(h, /server app 127\.0\.0\.1:9090/);
});

t.test('a missing program is reported, not installed, when install is off', async (t) => {
  const r = ensurePrograms(['pillion-bench-no-such-program'], false, () => t.fail('must not log an install'));
  t.same(r.installed, []);
  t.match(r.note, /missing pillion-bench-no-such-program; install disabled/);
  t.same(ensurePrograms(['sh'], false, () => {}), { installed: [], note: undefined });
});

// A main-thread dump in callgrind's format (names compressed to ids after first use), with
// JIT code known only by address until V8's perf map names it.
const CALLGRIND = `# callgrind format
version: 1
events: Ir
summary: 1000

ob=(1) /usr/bin/node
fl=(1) ???
fn=(1) 0x000000000d1000c0
0 300
cfn=(2) Builtins_CopyDataProperties
calls=2 0
0 450
fn=(2)
0 400
cfn=(3) v8::internal::Runtime_CopyDataProperties(int)
calls=1 0
0 50
fn=(3)
0 50
fn=(4) 0x000000000d200010
+2 100
* 100
`;
const PERF_MAP = ['d100000 400 JS:*addRequest node:_http_agent:230:49', 'd200000 80 JS:^addRequest node:_http_agent:230:49', ''].join('\n');

t.test('callgrind dumps: self costs per function, JIT code named from the perf map', async (t) => {
  const costs = selfCosts(CALLGRIND, perfMapResolver(PERF_MAP));
  t.same(Object.fromEntries(costs), {
    'JS:addRequest node:_http_agent:230:49': 500,
    Builtins_CopyDataProperties: 400,
    'v8::internal::Runtime_CopyDataProperties(int)': 50,
  }, "a call's inclusive cost stays with the callee, and the optimised and baseline code of one function add up");
  t.equal([...costs.values()].reduce((a, b) => a + b, 0), 950, 'every instruction counted once');
  t.equal(perfMapResolver(PERF_MAP)('0x000000000d300000'), '0x000000000d300000', 'an address outside every range keeps its address');
  t.equal(category('JS:addRequest node:_http_agent:230:49'), 'JavaScript');
  t.equal(category('Builtins_KeyedLoadIC_Megamorphic'), 'V8 builtins (inline caches, property access, strings)');
  t.equal(category('v8::internal::Runtime_CopyDataProperties(int)'), "V8 runtime (objects' slow paths)");
  t.equal(category('v8::internal::Scavenger::ScavengePage(v8::internal::MemoryChunk*)'), 'garbage collection');
});

t.test('a start that lost its port to another socket is retried, anything else is not', async (t) => {
  const inUse = () => new Error('pillion client exited (code 1); stderr: cannot listen: listen EADDRINUSE: address already in use 0.0.0.0:33341');
  let calls = 0;
  t.equal(await retryOnAddressInUse(async () => { if (++calls < 3) throw inUse(); return 'up'; }), 'up', 'up on the third try');
  t.equal(calls, 3);

  calls = 0;
  await t.rejects(retryOnAddressInUse(async () => { calls++; throw inUse(); }), /EADDRINUSE/, 'the last try\'s error, after three');
  t.equal(calls, 3);

  calls = 0;
  await t.rejects(retryOnAddressInUse(async () => { calls++; throw new Error('not built'); }), /not built/);
  t.equal(calls, 1, 'any other failure at once');
});
