// What every policy builds when a config version is applied: its stage, plus what the
// admin API shows of it and how to release its timers when the version is replaced.
import type { Stage } from '../pipeline';
import type { Clock } from '../runtime/clock';
import type { Logger } from '../runtime/logger';
import type { ProxyMetrics } from '../observability/metrics';
import type { TracingRuntime } from '../tracing';

export interface PolicyRuntime {
  readonly stage: Stage;
  /** Merged into this service's entry of GET /clusters. */
  describe?(): Record<string, unknown>;
  /** Called once when a new config version drops or replaces this runtime. */
  close?(): void | Promise<void>;
}

/** Long-lived things the policies are built with (injected so tests control them). */
export interface PolicyDeps {
  readonly clock: Clock;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  /** Redis URL for rateLimit scope: global (--redis or PILLION_REDIS_URL). */
  readonly redisUrl: string | undefined;
  /** The proxy's own service name (inbound policies, metric labels). */
  readonly selfService: string;
  /** Tracing stages (proxy/tracing); absent: no tracing stage at all. */
  readonly tracing?: TracingRuntime;
}
