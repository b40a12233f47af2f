// Instructions per forwarded request, counted by valgrind's callgrind: unlike req/s or CPU
// seconds, a count does not move with what else the machine is doing, so it can attribute
// costs of a few percent on a machine whose speed drifts by more than that. The proxy runs
// under callgrind with --perf-basic-prof (V8 writes a map from JIT code addresses to
// JavaScript function names, which callgrind cannot see), takes a count-bounded warm-up,
// then the counters are zeroed, a fixed number of requests is sent and the main thread's
// counts are dumped. The proxy is started by the bench's own scenario code, only under
// valgrind (ScenarioContext.launchNode). Counts differ by a few percent between two processes
// of the same build (the JIT does not decide the same way twice), so compare medians of
// several runs.
//
//   node dist/bench/instructions.js --scenario pillion-trace-1 --warmup 10000 --requests 5000
//
// Any one-process scenario of `pillion bench` (pillion, pillion-trace-1, pillion-trace-100,
// http-proxy, fastify-proxy).
//
// Needs valgrind (callgrind_control comes with it) and `npm run build`. Under valgrind the
// proxy serves about 100 requests a second: the defaults take about 3 minutes.
import http from 'node:http';
import path from 'node:path';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { startUpstream } from './runner';
import { allScenarios, ScenarioContext } from './scenarios';
import { startOtlpSink } from './servers';

/** JIT code ranges from V8's /tmp/perf-PID.map, to name callgrind's bare addresses. */
export function perfMapResolver(mapText: string): (name: string) => string {
  const ranges = mapText.split('\n').flatMap((line) => {
    const [start, size, ...rest] = line.split(' ');
    return start && size && rest.length ? [{ start: parseInt(start, 16), end: parseInt(start, 16) + parseInt(size, 16), name: rest.join(' ') }] : [];
  }).sort((a, b) => a.start - b.start);
  return (name) => {
    const m = /^0x([0-9a-f]+)/.exec(name);
    if (!m) return name;
    const at = parseInt(m[1]!, 16);
    // The last range starting at or below the address (binary search), then back over overlaps.
    let lo = 0, hi = ranges.length - 1, i = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (ranges[mid]!.start <= at) { i = mid; lo = mid + 1; } else hi = mid - 1;
    }
    for (; i >= 0 && at - ranges[i]!.start < 1 << 20; i--) if (at < ranges[i]!.end) return ranges[i]!.name;
    return name;
  };
}

/**
 * Self cost per function from a callgrind output file (events: Ir). A cost line right after
 * `calls=` is the inclusive cost of that call and belongs to the callee, so it is skipped.
 * JavaScript tiers (`JS:*f`, `JS:^f`, `JS:~f`) are merged into one name.
 */
export function selfCosts(text: string, resolve: (name: string) => string = (n) => n): Map<string, number> {
  const names = new Map<string, string>();
  const costs = new Map<string, number>();
  let fn = '?';
  let afterCall = false;
  for (const line of text.split('\n')) {
    const def = /^(c?fn)=\((\d+)\)(?: (.*))?$/.exec(line);
    if (def) {
      if (def[3] !== undefined) names.set(def[2]!, def[3]);
      if (def[1] === 'fn') fn = resolve(names.get(def[2]!) ?? def[2]!).replace(/^JS:[*^~+-]/, 'JS:');
      continue;
    }
    if (line.startsWith('calls=')) { afterCall = true; continue; }
    if (!/^[0-9+*-]/.test(line)) continue;
    if (afterCall) { afterCall = false; continue; }
    const cost = Number(line.split(' ')[1] ?? 0);
    if (cost > 0) costs.set(fn, (costs.get(fn) ?? 0) + cost);
  }
  return costs;
}

/** Where an instruction was spent, coarsely: what a reader can act on. */
export function category(name: string): string {
  if (name.startsWith('JS:')) return 'JavaScript';
  if (name.startsWith('RegExp:')) return 'regular expressions';
  if (name.startsWith('Builtins_')) return 'V8 builtins (inline caches, property access, strings)';
  if (/Scaveng|MarkCompact|Sweeper|Marking|Evacuat|Heap::|MemoryChunk|PagedSpace|NewSpace/.test(name)) return 'garbage collection';
  if (/^v8::internal::Runtime_|LookupIterator|Dictionary|JSObject::|JSReceiver::|KeyAccumulator|Map::/.test(name)) return "V8 runtime (objects' slow paths)";
  if (name.startsWith('v8::')) return 'V8, other';
  if (name.startsWith('node::') || name.startsWith('uv_') || name.includes('llhttp')) return 'Node and libuv (C++)';
  return 'libc and other';
}

/** Sends exactly `count` GETs over `connections` keep-alive connections. */
async function load(port: number, hostHeader: string, count: number, connections: number): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  let sent = 0;
  const one = (): Promise<void> => new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host: hostHeader }, agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
  });
  const worker = async () => { while (sent < count) { sent++; await one(); } };
  await Promise.all(Array.from({ length: connections }, worker));
  agent.destroy();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    scenario: { type: 'string', default: 'pillion' },
    warmup: { type: 'string', default: '10000' }, requests: { type: 'string', default: '5000' }, top: { type: 'string', default: '25' },
  } });
  const scenario = allScenarios.find((s) => s.name === values.scenario);
  if (!scenario) throw new Error(`unknown scenario "${values.scenario}"; one of: ${allScenarios.map((s) => s.name).join(', ')}`);
  const [warmup, requests] = [Number(values.warmup), Number(values.requests)];
  const root = path.join(__dirname, '..', '..');
  const dir = mkdtempSync(path.join(tmpdir(), 'pillion-instructions-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    const upstream = await startUpstream(root, dir);
    stops.push(() => upstream.child.stop());
    const otlp = await startOtlpSink();
    stops.push(() => otlp.close());
    // The scenario's own processes, each run as `valgrind ... node --perf-basic-prof ...`.
    const ctx: ScenarioContext = {
      upstreamPort: upstream.port, rawDir: dir, otlp, root, redisUrl: undefined, startTimeoutMs: 300_000,
      launchNode: (nodeArgs) => ({
        command: 'valgrind',
        args: ['--tool=callgrind', '--smc-check=all-non-file', '--dump-instr=no', '--separate-threads=yes', `--callgrind-out-file=${dir}/cg.%p`,
          process.execPath, '--perf-basic-prof', ...nodeArgs],
      }),
    };
    const why = scenario.unavailable(ctx);
    if (why) throw new Error(`${scenario.name} cannot run here: ${why}`);
    const target = await scenario.start(ctx);
    // V8 leaves its perf maps in /tmp; they are read below, and go with the processes.
    stops.unshift(async () => {
      await target.stop();
      for (const pid of target.pids) rmSync(`/tmp/perf-${pid}.map`, { force: true });
    });
    if (target.pids.length !== 1) throw new Error(`${scenario.name} runs ${target.pids.length} processes; this counts one proxy`);
    const pid = target.pids[0]!;

    process.stderr.write(`${scenario.name}: ${warmup} requests of warm-up, then ${requests} counted (pid ${pid}, files in ${dir})\n`);
    await load(target.port, target.hostHeader, warmup, 32);
    execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore' });
    await load(target.port, target.hostHeader, requests, 32);
    execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore' });

    // Thread 1 (the main thread) of dump part 1.
    const dump = path.join(dir, `cg.${pid}.1-01`);
    if (!existsSync(dump)) throw new Error(`no callgrind dump for the main thread in ${dir}`);
    const resolve = perfMapResolver(readFileSync(`/tmp/perf-${pid}.map`, 'utf8'));
    const costs = selfCosts(readFileSync(dump, 'utf8'), resolve);
    const total = [...costs.values()].reduce((a, b) => a + b, 0);
    const per = (n: number) => Math.round(n / requests).toLocaleString('en-US');
    const byCategory = new Map<string, number>();
    for (const [name, n] of costs) {
      const c = category(name);
      byCategory.set(c, (byCategory.get(c) ?? 0) + n);
    }
    const lines = [`${scenario.name}: ${per(total)} instructions per request on the main thread (${requests} requests after ${warmup} of warm-up)`, ''];
    for (const [c, n] of [...byCategory].sort((a, b) => b[1] - a[1])) lines.push(`${per(n).padStart(9)}  ${(100 * n / total).toFixed(1).padStart(5)}%  ${c}`);
    lines.push('', `top ${values.top} functions by their own instructions per request:`);
    for (const [name, n] of [...costs].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))) lines.push(`${per(n).padStart(9)}  ${name.slice(0, 120)}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`instructions: ${err.message}\n`);
    process.exit(1);
  });
}
