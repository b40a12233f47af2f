// The typed, readonly model of a TrafficPolicy after decoding: unit-named, defaults applied.

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** What a failed attempt must look like for the retry policy to try again. */
export type RetryCondition = 'connect-failure' | 'reset' | 'gateway-error' | '5xx' | number;

export interface RetryConfig {
  /** Retries after the first try. */
  readonly attempts: number;
  /** Bound on each attempt; undefined means only the overall timeout applies. */
  readonly perTryTimeoutMs: number | undefined;
  readonly on: readonly RetryCondition[];
}

export interface CircuitBreakerConfig {
  readonly errorThresholdPercentage: number;
  readonly volumeThreshold: number;
  readonly windowSeconds: number;
  readonly resetTimeoutMs: number;
  readonly maxConcurrent: number;
}

export type RateLimitKey =
  | { readonly kind: 'none' }
  | { readonly kind: 'client-ip' }
  | { readonly kind: 'header'; readonly name: string };

export interface RateLimitConfig {
  readonly requestsPerSecond: number;
  readonly burst: number;
  readonly key: RateLimitKey;
  readonly scope: 'local' | 'global';
}

export interface RouteMatch {
  readonly pathPrefix: string | undefined;
  /** Upper-case method names; undefined matches every method. */
  readonly methods: readonly string[] | undefined;
}

export interface RouteConfig {
  readonly match: RouteMatch;
  readonly rateLimit: RateLimitConfig | undefined;
  readonly timeoutMs: number | undefined;
  readonly retries: RetryConfig | undefined;
}

export interface TrafficPolicy {
  readonly name: string;
  readonly service: string;
  readonly endpoints: readonly Endpoint[];
  readonly timeoutMs: number;
  readonly retries: RetryConfig;
  readonly circuitBreaker: CircuitBreakerConfig | undefined;
  readonly rateLimit: RateLimitConfig | undefined;
  readonly routes: readonly RouteConfig[];
}

/** One applied configuration: what the admin API's /config_dump shows. */
export interface PolicySnapshot {
  readonly version: number | string;
  readonly source: 'file' | 'control' | 'none';
  readonly policies: readonly TrafficPolicy[];
}

export const DEFAULT_TIMEOUT_MS = 15_000;
export const DEFAULT_RETRY: RetryConfig = Object.freeze({
  attempts: 0,
  perTryTimeoutMs: undefined,
  on: Object.freeze(['connect-failure', 'reset', 'gateway-error'] as RetryCondition[]),
});
