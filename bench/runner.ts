// One bench run: set up, start the upstream, then rounds of every scenario in rotated order
// (so drift on a shared machine spreads over all of them), then summarise and write.
import path from 'node:path';
import os from 'node:os';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { startChild, waitForHttp, Child } from './child';
import { usageOf } from './proc';
import { median } from './stats';
import { ensurePrograms, programPath } from './setup';
import { describeMachine } from './machine';
import { runWrk } from './load/wrk';
import { runFixedRate } from './load/fixed-rate';
import { startOtlpSink } from './servers/otlp-sink';
import { startRedis } from './redis';
import { runConvergence } from './convergence-loader';
import { runSideBySide, SIDE_BY_SIDE_PAIRS, SideBySideResult } from './side-by-side';
import { allScenarios, Scenario, ScenarioContext } from './scenarios';
import { summarize, computeBars, renderMarkdown, renderSvg } from './report';
import { errorSummary } from './results';
import type { BenchResults, BenchSettings, RoundSample, ScenarioResult } from './results';

export interface BenchOptions {
  readonly quick: boolean;
  readonly scenarios: readonly string[];
  readonly rounds: number;
  readonly throughputSeconds: number;
  readonly fixedRateSeconds: number;
  readonly warmupSeconds: number;
  /** Where latest.{json,md,svg} go. */
  readonly outDir: string;
  /** Scratch: configs and the processes' stderr (gitignored). */
  readonly rawDir: string;
  readonly install: boolean;
  readonly convergence: readonly { proxies: number; applies: number }[];
  /** Also run the bars' comparisons side by side (see bench/side-by-side.ts). */
  readonly sideBySide: boolean;
  /** Rounds of the side-by-side phase; default `rounds`. */
  readonly sideBySideRounds?: number;
  readonly command: string;
  readonly root: string;
  readonly log: (line: string) => void;
}

const THROUGHPUT = { threads: 1, connections: 32, responseBytes: 12, path: '/' };
const FIXED = { rate: 1000, connections: 16, responseBytes: 1024, path: '/1k' };

async function measure(scenario: Scenario, ctx: ScenarioContext, opts: BenchOptions, round: number): Promise<RoundSample> {
  const target = await scenario.start(ctx);
  try {
    const url = `http://127.0.0.1:${target.port}${THROUGHPUT.path}`;
    const wrkOpts = { url, host: target.hostHeader, connections: THROUGHPUT.connections, threads: THROUGHPUT.threads };
    if (opts.warmupSeconds > 0) await runWrk({ ...wrkOpts, durationSeconds: opts.warmupSeconds });
    const u0 = usageOf(target.pids);
    const throughput = await runWrk({ ...wrkOpts, durationSeconds: opts.throughputSeconds });
    const u1 = usageOf(target.pids);
    const fixedRate = await runFixedRate({
      port: target.port, hostHeader: target.hostHeader, path: FIXED.path, rate: FIXED.rate,
      connections: FIXED.connections, durationSeconds: opts.fixedRateSeconds,
    });
    const u2 = usageOf(target.pids);
    const charged = target.pids.length > 0;
    return {
      round, throughput, fixedRate, loadAvg1: os.loadavg()[0],
      ...(charged ? {
        throughputCpuPer1k: (u1.cpuSeconds - u0.cpuSeconds) / (throughput.requests / 1000),
        fixedRateCpuPer1k: (u2.cpuSeconds - u1.cpuSeconds) / (fixedRate.completed / 1000),
        rssMb: u2.rssBytes / 2 ** 20,
      } : {}),
    };
  } finally {
    await target.stop();
  }
}

function describeSample(s: RoundSample): string {
  if (s.error) return `failed: ${s.error}`;
  const t = s.throughput!;
  const f = s.fixedRate!;
  const cpu = s.throughputCpuPer1k !== undefined ? `, CPU ${s.throughputCpuPer1k.toFixed(3)} s/1k req, RSS ${s.rssMb!.toFixed(0)} MB` : '';
  return `${Math.round(t.requestsPerSecond).toLocaleString('en-US')} req/s p50 ${t.p50Ms.toFixed(2)} p99 ${t.p99Ms.toFixed(2)} ms`
    + `${t.errors ? ` (${t.errors} errors)` : ''}; at ${FIXED.rate}/s p50 ${f.p50Ms.toFixed(2)} p99 ${f.p99Ms.toFixed(2)} ms${cpu}`;
}

function gitCommit(root: string): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

export async function runBench(opts: BenchOptions): Promise<BenchResults> {
  const startedAt = new Date().toISOString();
  mkdirSync(opts.rawDir, { recursive: true });
  mkdirSync(opts.outDir, { recursive: true });
  const log = opts.log;

  const selected = allScenarios.filter((s) => opts.scenarios.includes(s.name));
  const programs = ['wrk'];
  if (opts.scenarios.includes('nginx')) programs.push('nginx');
  if (opts.scenarios.includes('haproxy')) programs.push('haproxy');
  if (opts.scenarios.includes('pillion-pair-global')) programs.push('redis-server');
  const setup = ensurePrograms(programs, opts.install, log);
  if (setup.note) log(`setup: ${setup.note}`);
  if (!programPath('wrk')) throw new Error(`wrk is required for every scenario and is not installed${setup.note ? ` (${setup.note})` : ''}`);
  const machine = describeMachine();
  log(`machine: ${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, kernel ${machine.kernel}`);

  const children: Child[] = [];
  const otlp = await startOtlpSink();
  try {
    const upstream = await startUpstream(opts.root, opts.rawDir);
    children.push(upstream.child);
    const upstreamPort = upstream.port;
    const redis = opts.scenarios.includes('pillion-pair-global') ? await startRedis(opts.rawDir) : undefined;
    if (redis) children.push(redis.child);
    const ctx: ScenarioContext = { upstreamPort, rawDir: opts.rawDir, otlp, root: opts.root, redisUrl: redis?.url };

    const skipped = new Map<string, string>();
    for (const s of selected) {
      const why = s.unavailable(ctx);
      if (why) { skipped.set(s.name, why); log(`${s.name}: skipped: ${why}`); }
    }
    const runnable = selected.filter((s) => !skipped.has(s.name));
    const samples = new Map<string, RoundSample[]>(runnable.map((s) => [s.name, []]));
    for (let round = 0; round < opts.rounds; round++) {
      const order = runnable.map((_, i) => runnable[(i + round) % runnable.length]!);
      for (const s of order) {
        let sample: RoundSample;
        try {
          sample = await measure(s, ctx, opts, round);
        } catch (err) {
          sample = { round, error: errorSummary(err) };
        }
        samples.get(s.name)!.push(sample);
        log(`round ${round + 1}/${opts.rounds} ${s.name}: ${describeSample(sample)}`);
      }
    }

    const scenarioResults: ScenarioResult[] = selected.map((s) => {
      const why = skipped.get(s.name);
      if (why) return { name: s.name, label: s.label, hops: s.hops, status: 'skipped', reason: why, samples: [] };
      const mine = samples.get(s.name)!;
      const summary = summarize(s.name, samples);
      return summary
        ? { name: s.name, label: s.label, hops: s.hops, status: 'ok', samples: mine, summary }
        : { name: s.name, label: s.label, hops: s.hops, status: 'failed', reason: mine.find((x) => x.error)?.error ?? 'no sample', samples: mine };
    });

    // The bars' comparisons once more, each pair loaded at the same time (drift cancels).
    const byName = new Map(runnable.map((s) => [s.name, s]));
    const sideBySide: SideBySideResult[] = [];
    if (opts.sideBySide) {
      for (const pair of SIDE_BY_SIDE_PAIRS) {
        if (!byName.has(pair.candidate) || !byName.has(pair.baseline)) continue;
        const r = await runSideBySide(pair, byName, ctx, {
          helperPids: [process.pid, ...children.map((c) => c.pid)],
          rounds: opts.sideBySideRounds ?? opts.rounds, seconds: opts.throughputSeconds, warmupSeconds: opts.warmupSeconds,
          connections: THROUGHPUT.connections, path: THROUGHPUT.path, log,
        });
        if (r.status !== 'ok') log(`side by side ${pair.candidate} vs ${pair.baseline}: failed: ${r.reason}`);
        sideBySide.push(r);
      }
    }

    const convergence = opts.convergence.length
      ? await runConvergence(opts.convergence, log)
      : { status: 'skipped' as const, reason: 'not requested', points: [] };

    const settings: BenchSettings = {
      rounds: opts.rounds, warmupSeconds: opts.warmupSeconds,
      throughput: { tool: 'wrk', threads: THROUGHPUT.threads, connections: THROUGHPUT.connections, seconds: opts.throughputSeconds, responseBytes: THROUGHPUT.responseBytes },
      fixedRate: { tool: 'bench/load/fixed-rate-worker', rate: FIXED.rate, connections: FIXED.connections, seconds: opts.fixedRateSeconds, responseBytes: FIXED.responseBytes },
    };
    const sink = otlp.stats();
    const loads = [...samples.values()].flat().map((x) => x.loadAvg1).filter((v): v is number => v !== undefined);
    const results: BenchResults = {
      format: 1, startedAt, finishedAt: new Date().toISOString(), command: opts.command, quick: opts.quick,
      gitCommit: gitCommit(opts.root), machine, setup, settings, scenarios: scenarioResults, convergence, sideBySide,
      bars: computeBars(scenarioResults, convergence, sideBySide),
      load: { min: Math.min(...loads), median: median(loads), max: Math.max(...loads) },
      otlpSink: { exportRequests: sink.requests, bytes: sink.bytes },
    };
    writeFileSync(path.join(opts.outDir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
    writeReports(opts.outDir, results);
    log(`results: ${path.join(opts.outDir, 'latest.md')} (+ .json, .svg)`);
    return results;
  } finally {
    for (const c of children.reverse()) await c.stop();
    await otlp.close();
  }
}

function writeReports(dir: string, results: BenchResults): void {
  writeFileSync(path.join(dir, 'latest.svg'), renderSvg(results));
  writeFileSync(path.join(dir, 'latest.md'), renderMarkdown(results, 'latest.svg'));
}

/** Recomputes the bars and rewrites latest.md and latest.svg from latest.json (after a change to the reports). */
export function renderResults(dir: string): void {
  // JSON has no NaN: unmeasured figures come back as null, which the reports print as "–".
  const parsed = JSON.parse(readFileSync(path.join(dir, 'latest.json'), 'utf8'), (_k, v) => (v === null ? NaN : v)) as BenchResults;
  // The bars are derived data: recomputed, so a change to how they are read applies to old runs too.
  const results: BenchResults = { ...parsed, bars: computeBars(parsed.scenarios, parsed.convergence, parsed.sideBySide ?? []) };
  writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeReports(dir, results);
}

/** The bench's upstream (bench/servers/upstream.ts) in its own process, answering on the port it reports. */
export async function startUpstream(root: string, rawDir: string): Promise<{ child: Child; port: number }> {
  const stdoutFile = path.join(rawDir, 'upstream.stdout.log');
  const child = startChild({
    name: 'upstream', command: process.execPath, args: [path.join(root, 'dist', 'bench', 'servers', 'upstream.js'), '--port', '0'],
    logFile: path.join(rawDir, 'upstream.stderr.log'), stdoutFile,
  });
  try {
    const port = await readPort(child, stdoutFile);
    await waitForHttp(child, `http://127.0.0.1:${port}/`);
    return { child, port };
  } catch (err) {
    await child.stop();
    throw err;
  }
}

/** The upstream prints {"port":N} once listening. */
async function readPort(child: Child, stdoutFile: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    try {
      const m = /"port":(\d+)/.exec(readFileSync(stdoutFile, 'utf8'));
      if (m) return Number(m[1]);
    } catch {
      // not written yet
    }
    if (child.proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the upstream did not report its port');
}
