// The shape of a bench run's results, as written to bench/results/*.json, and how a failure is recorded in them.
import type { MachineDescription } from './machine';
import type { SetupReport } from './setup';
import type { WrkResult } from './load/wrk';
import type { FixedRateResult } from './load/fixed-rate';
import type { SideBySideResult } from './side-by-side';

/** How a failure is recorded in the results: its first line, bounded. */
export function errorSummary(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!.slice(0, 500);
}

export interface BenchSettings {
  readonly rounds: number;
  readonly warmupSeconds: number;
  readonly throughput: { readonly tool: 'wrk'; readonly threads: number; readonly connections: number; readonly seconds: number; readonly responseBytes: number };
  readonly fixedRate: { readonly tool: 'bench/load/fixed-rate-worker'; readonly rate: number; readonly connections: number; readonly seconds: number; readonly responseBytes: number };
}

export interface RoundSample {
  readonly round: number;
  readonly throughput?: WrkResult;
  /** Proxy CPU seconds (user+system, all its processes) per 1,000 requests. */
  readonly throughputCpuPer1k?: number;
  readonly fixedRate?: FixedRateResult;
  readonly fixedRateCpuPer1k?: number;
  /** Resident memory of the proxy's processes after the run, MB. */
  readonly rssMb?: number;
  /** The machine's 1-minute load average at the end of the sample (others' work shows here). */
  readonly loadAvg1?: number;
  readonly error?: string;
}

export interface ScenarioSummary {
  readonly rounds: number;
  readonly rps: number;
  /** Lowest and highest req/s over the rounds: how noisy the machine was. */
  readonly rpsMin: number;
  readonly rpsMax: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly fixed: {
    readonly p50Ms: number; readonly p90Ms: number; readonly p99Ms: number;
    readonly addedP50Ms: number; readonly addedP90Ms: number; readonly addedP99Ms: number;
    readonly achievedRate: number; readonly errors: number;
    /** The generator's own CPU as a share of one core (it must not dominate the machine). */
    readonly generatorCpuShare: number;
  };
  readonly cpuPer1k: { readonly throughput: number; readonly fixedRate: number };
  readonly rssMb: number;
  /** Medians of per-round ratios of req/s (same round, so machine drift cancels). */
  readonly vsDirect: number;
  readonly vsHttpProxy: number;
  readonly vsNginx: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly label: string;
  readonly hops: number;
  readonly status: 'ok' | 'skipped' | 'failed';
  readonly reason?: string;
  readonly samples: readonly RoundSample[];
  readonly summary?: ScenarioSummary;
}

export interface ConvergencePoint {
  readonly proxies: number;
  readonly applies: number;
  readonly medianMs: number;
  readonly worstMs: number;
  readonly rssMb: number;
  /** Everything bench/convergence reported for this point. */
  readonly detail?: Record<string, unknown>;
}

export interface ConvergenceResult {
  readonly status: 'ok' | 'skipped' | 'failed';
  readonly reason?: string;
  readonly points: readonly ConvergencePoint[];
}

export interface Bar {
  readonly issue: number;
  readonly what: string;
  readonly goal: string;
  /** undefined when not measured in this run. */
  readonly value?: number;
  readonly display: string;
  readonly pass?: boolean;
}

export interface BenchResults {
  readonly format: 1;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly command: string;
  readonly quick: boolean;
  readonly gitCommit?: string;
  readonly machine: MachineDescription;
  readonly setup: SetupReport;
  readonly settings: BenchSettings;
  readonly scenarios: readonly ScenarioResult[];
  readonly convergence: ConvergenceResult;
  /** The bars' comparisons run at the same time (bench/side-by-side.ts); absent in older runs. */
  readonly sideBySide?: readonly SideBySideResult[];
  readonly bars: readonly Bar[];
  /** 1-minute load average over the samples: min, median, max. */
  readonly load: { readonly min: number; readonly median: number; readonly max: number };
  readonly otlpSink: { readonly exportRequests: number; readonly bytes: number };
}
