// What a scenario is: something started in front of the upstream that load can be sent to.
import type { OtlpSink } from '../servers/otlp-sink';

export interface ScenarioContext {
  readonly upstreamPort: number;
  /** Scratch folder for this run: configs and the processes' stderr. */
  readonly rawDir: string;
  readonly otlp: OtlpSink;
  /** The package root (bin/pillion.js, dist/). */
  readonly root: string;
  /** A Redis the global rate-limit scenario may use, when one could be started. */
  readonly redisUrl: string | undefined;
  /**
   * How the scenario's Node processes are run; default: Node itself. bench/instructions.ts runs
   * them under valgrind this way, so that it counts exactly what the bench starts.
   */
  readonly launchNode?: (nodeArgs: readonly string[]) => { command: string; args: string[] };
  /** How long a starting process may take to answer; default 15 s (under valgrind: minutes). */
  readonly startTimeoutMs?: number;
}

/** The command that runs `node ...nodeArgs` for this context (see launchNode). */
export function nodeCommand(ctx: ScenarioContext, nodeArgs: readonly string[]): { command: string; args: string[] } {
  return ctx.launchNode ? ctx.launchNode(nodeArgs) : { command: process.execPath, args: [...nodeArgs] };
}

export interface RunningTarget {
  /** Where load goes (127.0.0.1). */
  readonly port: number;
  /** Host header to send: Pillion's outbound listener routes by it. */
  readonly hostHeader: string;
  /** The proxy's processes, whose CPU and memory are charged to it (none for direct). */
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

export interface Scenario {
  readonly name: string;
  /** One line for the table. */
  readonly label: string;
  /** Proxy hops between the load generator and the upstream. */
  readonly hops: number;
  /** Why it cannot run here, or undefined. Checked after the setup step. */
  unavailable(ctx: Omit<ScenarioContext, 'upstreamPort' | 'otlp'>): string | undefined;
  start(ctx: ScenarioContext): Promise<RunningTarget>;
}
