// The proxy's subscription to the control server. (Stub until the control server lands.)
import type { ProxyMetrics } from '../observability/metrics';
import type { Logger } from '../runtime/logger';

export interface ControlClientOptions {
  readonly url: string;
  readonly token: string;
  /** PEM file of a CA to trust for https:// control URLs. */
  readonly caFile: string | undefined;
  readonly service: string;
  readonly proxyId: string;
  /** Destinations this proxy calls; undefined means all. */
  readonly egress: readonly string[] | undefined;
  readonly cacheDir: string;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  /** Decode and swap in a pushed version; throws (ConfigError or other) to reject it. */
  apply(version: number, documents: readonly unknown[]): Promise<void>;
}

export interface ControlClient {
  stop(): Promise<void>;
}

export interface CachedConfig {
  readonly version: number;
  readonly documents: readonly unknown[];
}

/** The last good config written by a previous run, if any. */
export function readCachedConfig(_cacheDir: string): CachedConfig | undefined {
  return undefined;
}

export function startControlClient(_opts: ControlClientOptions): ControlClient {
  throw new Error('control client not implemented yet');
}
