// The bench harness end to end, so it cannot rot: the fixed-rate generator against a local
// server, then `pillion bench --quick` on direct, Pillion and the bare http-proxy with very
// short phases. Needs wrk (CI installs it) and the compiled dist/ (npm test builds it).
import t from 'tap';
import http from 'node:http';
import path from 'node:path';
import os from 'node:os';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { BenchResults } from '../bench/results';
import { runSideBySide } from '../bench/side-by-side';
import type { RunningTarget, Scenario, ScenarioContext } from '../bench/scenarios';

const root = path.join(__dirname, '..');
const bin = path.join(root, 'bin', 'pillion.js');
const worker = path.join(root, 'dist', 'bench', 'load', 'fixed-rate-worker.js');

/** The programs of `names` that are not on PATH. */
function missingTools(names: readonly string[]): string[] {
  return names.filter((n) => {
    try {
      execFileSync('sh', ['-c', `command -v ${n}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

function hasWrk(): boolean {
  return missingTools(['wrk']).length === 0;
}

function run(cmd: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: root, timeout: timeoutMs, maxBuffer: 4 << 20, env: env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('the fixed-rate generator holds its rate and counts failures', { skip: existsSync(worker) ? false : 'dist/ not built (npm run build)' }, async (t) => {
  let served = 0;
  const server = http.createServer((req, res) => {
    served++;
    // Every 10th request fails, so the error count has something to count.
    res.writeHead(served % 10 === 0 ? 503 : 200, { 'content-length': 1024 });
    res.end(Buffer.alloc(1024, 'x'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => { server.closeAllConnections(); server.close(); });
  const port = (server.address() as AddressInfo).port;
  const out = await run(process.execPath, [worker, '--port', String(port), '--path', '/1k', '--rate', '200', '--connections', '4', '--duration-ms', '1000'], 20_000);
  t.equal(out.code, 0, out.stderr);
  const r = JSON.parse(out.stdout);
  t.equal(r.scheduled, 200, '200 req/s for 1 s over 4 connections');
  t.equal(r.completed + r.errors, 200);
  t.equal(r.errors, 20);
  t.equal(served, 200, 'the server saw exactly the scheduled requests');
  t.ok(r.p50Ms > 0 && r.p50Ms <= r.p90Ms && r.p90Ms <= r.p99Ms && r.p99Ms <= r.maxMs);
});

t.test('an unknown scenario is a one-line error', async (t) => {
  const out = await run(process.execPath, [bin, 'bench', '--scenario', 'direct,nope'], 20_000);
  t.equal(out.code, 2);
  t.match(out.stderr, /unknown scenario "nope"/);
  const rounds = await run(process.execPath, [bin, 'bench', '--side-by-side-rounds', '0'], 20_000);
  t.equal(rounds.code, 2);
  t.match(rounds.stderr, /--side-by-side-rounds must be an integer 1-50 \(got "0"\)/);
});

t.test('side by side: every round a fresh pair, started in alternating order', { skip: hasWrk() ? false : 'wrk is not installed (CI installs it)' }, async (t) => {
  const events: string[] = [];
  let running = 0;
  let mostRunning = 0;
  // 'slow' answers after 5 ms, so whichever started first, the fast one must come out ahead.
  const fake = (name: string, delayMs: number): Scenario => ({
    name, label: name, hops: 1, unavailable: () => undefined,
    async start(): Promise<RunningTarget> {
      const server = http.createServer((_req, res) => { setTimeout(() => res.end('ok'), delayMs); });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      events.push(`start ${name}`);
      mostRunning = Math.max(mostRunning, ++running);
      return {
        port: (server.address() as AddressInfo).port, hostHeader: 'upstream', pids: [],
        stop: async () => {
          server.closeAllConnections();
          await new Promise<void>((r) => server.close(() => r()));
          running--;
          events.push(`stop ${name}`);
        },
      };
    },
  });
  const scenarios = new Map([['fast', fake('fast', 0)], ['slow', fake('slow', 5)]]);
  const ctx = {} as ScenarioContext;
  const r = await runSideBySide({ candidate: 'fast', baseline: 'slow' }, scenarios, ctx, {
    helperPids: [], rounds: 3, seconds: 1, warmupSeconds: 0, connections: 4, path: '/', log: () => {},
  });
  t.equal(r.status, 'ok', r.reason);
  t.same(events.filter((e) => e.startsWith('start')), ['start fast', 'start slow', 'start slow', 'start fast', 'start fast', 'start slow'],
    'three fresh pairs, the first started alternating');
  t.equal(mostRunning, 2, 'a round\'s pair is stopped before the next one starts');
  t.equal(running, 0, 'nothing left running');
  t.equal(r.rounds.length, 3);
  for (const round of r.rounds) t.ok(round.candidate.requests > round.baseline.requests, `round ${round.round}: samples kept on their own side`);
});

t.test('pillion bench --quick on direct, Pillion and http-proxy', { skip: hasWrk() ? false : 'wrk is not installed (CI installs it)' }, async (t) => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'pillion-bench-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const r = await run(process.execPath, [bin, 'bench', '--quick', '--scenario', 'direct,pillion,http-proxy',
    '--duration', '1s', '--warmup', '0s', '--side-by-side-rounds', '2', '--no-install', '--no-convergence', '--out', out], 90_000);
  t.equal(r.code, 0, r.stderr.split('\n').slice(-5).join('\n'));
  const res = JSON.parse(readFileSync(path.join(out, 'latest.json'), 'utf8')) as BenchResults;
  t.same(res.scenarios.map((s) => [s.name, s.status]), [['direct', 'ok'], ['pillion', 'ok'], ['http-proxy', 'ok']]);
  for (const s of res.scenarios) {
    t.ok(s.summary!.rps > 0, `${s.name} served load`);
    t.equal(s.summary!.errors, 0, `${s.name}: no failed requests under wrk`);
    t.ok(s.summary!.fixed.achievedRate > 900, `${s.name}: the fixed rate was held`);
  }
  const pillion = res.scenarios.find((s) => s.name === 'pillion')!.summary!;
  t.ok(pillion.cpuPer1k.throughput > 0, 'CPU charged to the proxy process');
  t.ok(pillion.rssMb > 10, 'resident memory read from /proc');
  // NaN in the run is null in JSON: direct has no proxy process to charge.
  t.equal(res.scenarios[0]!.summary!.cpuPer1k.throughput as number | null, null, 'no proxy CPU for direct');
  t.ok(Number.isFinite(pillion.vsHttpProxy));
  // pillion and http-proxy are a bar's pair: also run side by side, both loaded at once.
  const sbs = res.sideBySide!;
  t.same(sbs.map((r) => [r.candidate, r.baseline, r.status]), [['pillion', 'http-proxy', 'ok']]);
  t.ok(sbs[0]!.rounds[0]!.candidate.requests > 0 && sbs[0]!.rounds[0]!.baseline.requests > 0, 'both sides served load at once');
  t.equal(sbs[0]!.rounds.length, 2, '--side-by-side-rounds sets that phase apart from --rounds (1 with --quick)');
  t.ok(Number.isFinite(sbs[0]!.cpuRatio));
  t.equal(sbs[0]!.pinned, os.cpus().length >= 2, 'both proxies on one shared core (taskset is part of util-linux)');
  t.match(res.bars.find((b) => b.issue === 2)!.display,
    /^one after the other \d+\.\d\dx \(by CPU per request: \d+\.\d\dx\); side by side \d+\.\d\dx \(rounds [\d.]+x–[\d.]+x; by CPU per request: [\d.]+x\)$/);
  t.match(readFileSync(path.join(out, 'latest.md'), 'utf8'), /## Side by side/);
  t.equal(res.machine.cores, os.cpus().length);
  t.match(readFileSync(path.join(out, 'latest.md'), 'utf8'), /\| pillion \| 1 \| [\d,]+ \|/);
  t.match(readFileSync(path.join(out, 'latest.svg'), 'utf8'), /^<svg /);
  t.match(r.stdout, /issue 2: Pillion \(no policies\) req\/s vs bare http-proxy/);
});

t.test('bench/pair-ab.sh: a traced sidecar against an untraced one, side by side', async (t) => {
  const missing = missingTools(['wrk', 'taskset', 'python3', 'curl']);
  if (missing.length > 0) return t.skip(`needs ${missing.join(', ')} (CI installs them)`);
  if (!existsSync(path.join(root, 'dist', 'bench', 'servers', 'upstream.js'))) return t.skip('dist/ not built (npm run build)');
  const tracing = 'OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:18090 OTEL_TRACES_SAMPLER=always_on';
  const r = await run('bash', [path.join(root, 'bench', 'pair-ab.sh')], 60_000,
    { ...process.env, ROUNDS: '2', WARMUP: '1', DUR: '1', A_ENV: tracing, B_ENV: 'OTEL_SDK_DISABLED=true' });
  t.equal(r.code, 0, r.stderr);
  const rounds = r.stdout.split('\n').filter((l) => l.startsWith('round '));
  t.equal(rounds.length, 2, 'a line per round');
  for (const line of rounds) {
    const m = new RegExp('^round \\d: A (\\d+), B (\\d+) requests in 1s, A/B ([\\d.]+)x; RSS A (\\d+) MB, B (\\d+) MB; '
      + 'CPU per request, main thread \\(other threads\\): A ([\\d.]+) \\(([\\d.]+)\\) us, B ([\\d.]+) \\(([\\d.]+)\\) us$').exec(line);
    t.ok(m, line);
    if (m) {
      t.ok(Number(m[1]) > 0 && Number(m[2]) > 0 && Number(m[4]) > 10, 'both served load and their memory was read');
      t.ok(Number(m[6]) > 0 && Number(m[8]) > 0, 'both main threads\' CPU was read');
    }
  }
  t.match(r.stdout, /^median A\/B [\d.]+x \(rounds [\d.]+x-[\d.]+x\)$/m);
});
