// Side-by-side comparisons: the two scenarios a performance bar compares run at the same time,
// their proxies sharing one CPU core, each loaded by its own wrk from the other core(s).
//
// Why: on this class of machine the speed drifts by 2x within minutes (bench/results shows the
// req/s range over rounds), so two scenarios measured one after the other differ by ±30% for
// reasons of their own, and a 5% bar cannot be read from them. Run at the same moment on the
// same core, both proxies see the same machine. Pinning both to one core (taskset) matters:
// merely loaded together on all cores, the heavier proxy simply took more CPU than the other
// and the ratio of requests understated its cost (measured: 0.93x by requests, 0.85x by CPU
// per request, for the same rounds). Sharing one core, the scheduler gives each half of it,
// so the ratio of requests completed and the ratio of CPU per request agree. Each round starts
// both afresh (see runSideBySide). The one-after-the-other figures stay in the report.
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { usageOf } from './proc';
import { median } from './stats';
import { runWrk } from './load/wrk';
import { programPath } from './setup';
import type { RunningTarget, Scenario, ScenarioContext } from './scenarios';
import { errorSummary } from './results';

export interface SideBySidePair {
  readonly candidate: string;
  readonly baseline: string;
}

/** The comparisons the issues' bars make (candidate over baseline). */
export const SIDE_BY_SIDE_PAIRS: readonly SideBySidePair[] = [
  { candidate: 'pillion', baseline: 'http-proxy' },
  { candidate: 'pillion-trace-1', baseline: 'pillion' },
  { candidate: 'pillion-trace-100', baseline: 'pillion' },
  { candidate: 'pillion-pair-policies', baseline: 'pillion-pair' },
  { candidate: 'pillion-pair-global', baseline: 'pillion-pair-policies' },
];

export interface SideBySideSample {
  readonly requests: number;
  /** Proxy CPU seconds per 1,000 requests in this round. */
  readonly cpuPer1k: number;
  readonly errors: number;
}

export interface SideBySideRound {
  readonly round: number;
  readonly candidate: SideBySideSample;
  readonly baseline: SideBySideSample;
}

export interface SideBySideResult extends SideBySidePair {
  readonly status: 'ok' | 'failed';
  /** Both proxies on one core, load and upstream on the others (false: one core, or no taskset). */
  readonly pinned?: boolean;
  readonly reason?: string;
  readonly rounds: readonly SideBySideRound[];
  /** Median over rounds of candidate requests / baseline requests (same seconds, same moment). */
  readonly ratio: number;
  readonly ratioMin: number;
  readonly ratioMax: number;
  /** Median over rounds of baseline CPU per request / candidate CPU per request. */
  readonly cpuRatio: number;
}

function failed(pair: SideBySidePair, reason: string, rounds: readonly SideBySideRound[]): SideBySideResult {
  return { ...pair, status: 'failed', reason, rounds, ratio: NaN, ratioMin: NaN, ratioMax: NaN, cpuRatio: NaN };
}

/** Ratios from the rounds (exported for the tests). */
export function summarizeSideBySide(pair: SideBySidePair, rounds: readonly SideBySideRound[]): SideBySideResult {
  const usable = rounds.filter((r) => r.candidate.requests > 0 && r.baseline.requests > 0);
  if (usable.length === 0) return failed(pair, 'no round completed requests on both sides', rounds);
  const ratios = usable.map((r) => r.candidate.requests / r.baseline.requests);
  return {
    ...pair, status: 'ok', rounds,
    ratio: median(ratios), ratioMin: Math.min(...ratios), ratioMax: Math.max(...ratios),
    cpuRatio: median(usable.map((r) => r.baseline.cpuPer1k / r.candidate.cpuPer1k)),
  };
}

export interface SideBySideOptions {
  /** Processes that are not under test (upstream, the bench itself): kept off the proxies' core. */
  readonly helperPids: readonly number[];
  readonly rounds: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly path: string;
  readonly log: (line: string) => void;
}

/** The proxies' core and the rest, or undefined when there is nothing to split. */
export function coreSplit(cores: number, hasTaskset: boolean): { proxies: string; others: string } | undefined {
  if (cores < 2 || !hasTaskset) return undefined;
  return { proxies: '0', others: cores === 2 ? '1' : `1-${cores - 1}` };
}

function pin(pid: number, cpus: string): void {
  // -a: every thread (V8's compiler and GC helpers, the OTLP export worker).
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}

/** The CPUs a process may run on now (`Cpus_allowed_list`), to put it back afterwards. */
function affinityOf(pid: number): string | undefined {
  try {
    return /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

async function loadBoth(targets: readonly RunningTarget[], opts: SideBySideOptions, seconds: number, cpus: string | undefined): Promise<SideBySideSample[]> {
  const before = targets.map((t) => usageOf(t.pids).cpuSeconds);
  const results = await Promise.all(targets.map((t) => runWrk({
    url: `http://127.0.0.1:${t.port}${opts.path}`, host: t.hostHeader, connections: opts.connections, durationSeconds: seconds, cpus,
  })));
  return targets.map((t, i) => {
    const r = results[i]!;
    const cpu = usageOf(t.pids).cpuSeconds - before[i]!;
    return { requests: r.requests, cpuPer1k: cpu / (r.requests / 1000), errors: r.errors };
  });
}

export async function runSideBySide(pair: SideBySidePair, scenarios: ReadonlyMap<string, Scenario>, ctx: ScenarioContext,
  opts: SideBySideOptions): Promise<SideBySideResult> {
  const split = coreSplit(os.cpus().length, programPath('taskset') !== undefined);
  const restore = new Map<number, string>();
  let started: RunningTarget[] = [];
  const rounds: SideBySideRound[] = [];
  try {
    if (split) {
      for (const pid of opts.helperPids) {
        const was = affinityOf(pid);
        if (was !== undefined) restore.set(pid, was);
        pin(pid, split.others);
      }
    }
    for (let round = 0; round < opts.rounds; round++) {
      // Every round gets a fresh pair of processes, started, warmed and loaded in alternating
      // order: two identical proxies started together can stay about 8% apart for their whole
      // life (measured), so a pair kept for all rounds repeats one draw instead of averaging.
      const candidateFirst = round % 2 === 0;
      const order = candidateFirst ? [pair.candidate, pair.baseline] : [pair.baseline, pair.candidate];
      for (const name of order) started.push(await scenarios.get(name)!.start(ctx));
      if (split) for (const t of started) for (const pid of t.pids) pin(pid, split.proxies);
      if (opts.warmupSeconds > 0) await loadBoth(started, opts, opts.warmupSeconds, split?.others);
      const samples = await loadBoth(started, opts, opts.seconds, split?.others);
      await Promise.all(started.map((t) => t.stop()));
      started = [];
      const [candidate, baseline] = candidateFirst ? samples : [samples[1], samples[0]];
      rounds.push({ round, candidate: candidate!, baseline: baseline! });
      opts.log(`side by side ${pair.candidate} vs ${pair.baseline}, round ${round + 1}/${opts.rounds}: `
        + `${candidate!.requests} vs ${baseline!.requests} requests (${(candidate!.requests / baseline!.requests).toFixed(3)}x), `
        + `CPU ${candidate!.cpuPer1k.toFixed(3)} vs ${baseline!.cpuPer1k.toFixed(3)} s/1k req`);
    }
    return { ...summarizeSideBySide(pair, rounds), pinned: split !== undefined };
  } catch (err) {
    return failed(pair, errorSummary(err), rounds);
  } finally {
    // The helpers get their own CPUs back for whatever the run does next; one that has
    // exited meanwhile must not keep the targets from being stopped.
    for (const [pid, cpus] of restore) {
      try {
        pin(pid, cpus);
      } catch {
        // gone
      }
    }
    await Promise.all(started.map((t) => t.stop()));
  }
}
