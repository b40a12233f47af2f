// From raw round samples to medians, same-round ratios and the issues' performance bars.
import { median } from '../stats';
import type { Bar, ConvergenceResult, RoundSample, ScenarioResult, ScenarioSummary } from '../results';
import type { SideBySideResult } from '../side-by-side';

type Samples = ReadonlyMap<string, readonly RoundSample[]>;

function ok(s: RoundSample): boolean {
  return !s.error && !!s.throughput && !!s.fixedRate;
}

function byRound(samples: readonly RoundSample[] | undefined): Map<number, RoundSample> {
  return new Map((samples ?? []).filter(ok).map((s) => [s.round, s]));
}

/** Median over rounds of f(this scenario's sample, the reference's sample of the same round). */
export function pairedMedian(a: readonly RoundSample[] | undefined, b: readonly RoundSample[] | undefined,
  f: (x: RoundSample, y: RoundSample) => number): number {
  const ra = byRound(a);
  const rb = byRound(b);
  const values: number[] = [];
  for (const [round, x] of ra) {
    const y = rb.get(round);
    if (y) values.push(f(x, y));
  }
  return median(values);
}

const rpsRatio = (x: RoundSample, y: RoundSample) => x.throughput!.requestsPerSecond / y.throughput!.requestsPerSecond;

export function summarize(name: string, all: Samples): ScenarioSummary | undefined {
  const mine = (all.get(name) ?? []).filter(ok);
  if (mine.length === 0) return undefined;
  const direct = all.get('direct');
  const m = (f: (s: RoundSample) => number | undefined) => median(mine.map((s) => f(s) ?? NaN));
  const added = (key: 'p50Ms' | 'p90Ms' | 'p99Ms') => pairedMedian(mine, direct, (x, y) => x.fixedRate![key] - y.fixedRate![key]);
  return {
    rounds: mine.length,
    rps: m((s) => s.throughput!.requestsPerSecond),
    rpsMin: Math.min(...mine.map((s) => s.throughput!.requestsPerSecond)),
    rpsMax: Math.max(...mine.map((s) => s.throughput!.requestsPerSecond)),
    p50Ms: m((s) => s.throughput!.p50Ms),
    p90Ms: m((s) => s.throughput!.p90Ms),
    p99Ms: m((s) => s.throughput!.p99Ms),
    errors: mine.reduce((n, s) => n + s.throughput!.errors, 0),
    fixed: {
      p50Ms: m((s) => s.fixedRate!.p50Ms),
      p90Ms: m((s) => s.fixedRate!.p90Ms),
      p99Ms: m((s) => s.fixedRate!.p99Ms),
      addedP50Ms: added('p50Ms'),
      addedP90Ms: added('p90Ms'),
      addedP99Ms: added('p99Ms'),
      achievedRate: m((s) => s.fixedRate!.achievedRate),
      errors: mine.reduce((n, s) => n + s.fixedRate!.errors, 0),
      generatorCpuShare: m((s) => s.fixedRate!.generatorCpuShare),
    },
    cpuPer1k: { throughput: m((s) => s.throughputCpuPer1k), fixedRate: m((s) => s.fixedRateCpuPer1k) },
    rssMb: m((s) => s.rssMb),
    vsDirect: pairedMedian(mine, direct, rpsRatio),
    vsHttpProxy: pairedMedian(mine, all.get('http-proxy'), rpsRatio),
    vsNginx: pairedMedian(mine, all.get('nginx'), rpsRatio),
  };
}

const fmtRatio = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'not measured');
const fmtPct = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : 'not measured');

function bar(issue: number, what: string, goal: string, value: number, display: string, pass: (v: number) => boolean | undefined): Bar {
  return Number.isFinite(value)
    ? { issue, what, goal, value, display, pass: pass(value) }
    : { issue, what, goal, display: 'not measured' };
}

/**
 * The performance figures issues 2-5 ask for, each from this run's samples. A comparison is
 * judged on its side-by-side reading when the run has one (both loaded at once: the machine's
 * drift cancels), else on the rounds measured one after the other; both are shown.
 */
export function computeBars(results: readonly ScenarioResult[], convergence: ConvergenceResult,
  sideBySide: readonly SideBySideResult[] = []): Bar[] {
  const all: Samples = new Map(results.map((r) => [r.name, r.samples]));
  const ratio = (a: string, b: string) => pairedMedian(all.get(a), all.get(b), rpsRatio);
  // The same comparison by CPU per request (b's over a's): on a shared machine a neighbour's
  // burst moves req/s a lot and a process's own CPU per request much less, so this is the
  // steadier reading of the same question (a single-threaded proxy's ceiling is 1/CPU).
  const cpuRatio = (a: string, b: string) => pairedMedian(all.get(a), all.get(b),
    (x, y) => (y.throughputCpuPer1k ?? NaN) / (x.throughputCpuPer1k ?? NaN));
  const summaryOf = (n: string) => results.find((r) => r.name === n)?.summary;
  const bars: Bar[] = [];

  /** `cost`: shown and judged as 1 - ratio (what the candidate loses), else as the ratio. */
  const comparison = (issue: number, what: string, goal: string, candidate: string, baseline: string,
    cost: boolean, pass: (v: number) => boolean | undefined) => {
    const show = (v: number) => (cost ? fmtPct(1 - v) : fmtRatio(v));
    const seq = ratio(candidate, baseline);
    const seqCpu = cpuRatio(candidate, baseline);
    const parts: string[] = [];
    if (Number.isFinite(seq)) parts.push(`one after the other ${show(seq)}${Number.isFinite(seqCpu) ? ` (by CPU per request: ${show(seqCpu)})` : ''}`);
    const sbs = sideBySide.find((r) => r.candidate === candidate && r.baseline === baseline && r.status === 'ok');
    if (sbs) {
      // As a cost, the best round is the one with the highest ratio.
      const [lo, hi] = cost ? [sbs.ratioMax, sbs.ratioMin] : [sbs.ratioMin, sbs.ratioMax];
      parts.push(`side by side ${show(sbs.ratio)} (rounds ${show(lo)}–${show(hi)}; by CPU per request: ${show(sbs.cpuRatio)})`);
    }
    const judged = sbs ? sbs.ratio : seq;
    const value = cost ? 1 - judged : judged;
    bars.push(bar(issue, what, goal, value, parts.join('; '), pass));
  };

  comparison(2, 'Pillion (no policies) req/s vs bare http-proxy', '>= 0.90x', 'pillion', 'http-proxy', false, (v) => v >= 0.9);
  const rss = summaryOf('pillion')?.rssMb ?? NaN;
  bars.push(bar(2, 'Pillion resident memory after the run', '< 70 MB', rss, Number.isFinite(rss) ? `${rss.toFixed(0)} MB` : '', (v) => v < 70));
  comparison(3, 'rate limit + breaker + retries vs no policies, sidecar pair', '>= 0.85x', 'pillion-pair-policies', 'pillion-pair', false, (v) => v >= 0.85);
  comparison(3, 'rate limit scope: global vs scope: local', 'reported', 'pillion-pair-global', 'pillion-pair-policies', false, () => undefined);
  comparison(4, 'throughput cost of tracing at 1% sampling', '<= 5%', 'pillion-trace-1', 'pillion', true, (v) => v <= 0.05);
  comparison(4, 'throughput cost of tracing at 100% sampling', 'reported', 'pillion-trace-100', 'pillion', true, () => undefined);

  for (const proxies of [100, 1000]) {
    const p = convergence.points.find((x) => x.proxies === proxies);
    const med = p?.medianMs ?? NaN;
    bars.push(bar(5, `control convergence, ${proxies} proxies: median (worst) time to all acknowledged`,
      proxies === 1000 ? '< 100 ms median' : 'reported', med,
      p ? `${p.medianMs.toFixed(1)} ms (${p.worstMs.toFixed(1)} ms), control RSS ${p.rssMb.toFixed(0)} MB` : '',
      (v) => (proxies === 1000 ? v < 100 : undefined)));
  }
  return bars;
}
