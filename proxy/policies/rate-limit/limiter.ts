// What the rate-limit stage asks of a limiter, and the local (per proxy) implementation.
import type { RateLimitConfig } from '../../config';
import type { Clock } from '../../runtime/clock';
import { KeyedStore } from './keyed-store';
import { TokenBucket } from './token-bucket';

export interface Limiter {
  /** Synchronous: true admits the request and spends one token of `key`. */
  admit(key: string): boolean;
  /** The 429's headers for `key`, right after `admit` refused it. */
  refusalHeaders(key: string): Record<string, string>;
  /** Timers, Redis connections. */
  close(): Promise<void>;
}

/** Default bound on distinct keys per limiter (per-key buckets take about 150 bytes each). */
export const DEFAULT_MAX_KEYS = 10_000;

export function rateLimitHeaders(limit: number, remaining: number, msUntilToken: number, msUntilFull: number): Record<string, string> {
  return {
    'retry-after': String(Math.max(1, Math.ceil(msUntilToken / 1000))),
    'x-ratelimit-limit': String(limit),
    'x-ratelimit-remaining': String(remaining),
    'x-ratelimit-reset': String(Math.max(1, Math.ceil(msUntilFull / 1000))),
  };
}

/** Token buckets held in this process: `scope: local`. */
export class LocalLimiter implements Limiter {
  private readonly single: TokenBucket | undefined;
  private readonly keyed: KeyedStore<TokenBucket> | undefined;

  constructor(private readonly config: RateLimitConfig, private readonly clock: Clock, maxKeys = DEFAULT_MAX_KEYS) {
    const { requestsPerSecond: rps, burst } = config;
    if (config.key.kind === 'none') this.single = new TokenBucket(rps, burst, clock.now());
    else {
      this.keyed = new KeyedStore<TokenBucket>({
        maxKeys,
        create: (_key, now) => new TokenBucket(rps, burst, now),
        isIdle: (bucket, now) => bucket.isFull(now),
      });
    }
  }

  private bucket(key: string, now: number): TokenBucket {
    return this.single ?? this.keyed!.get(key, now);
  }

  admit(key: string): boolean {
    const now = this.clock.now();
    return this.bucket(key, now).take(now);
  }

  refusalHeaders(key: string): Record<string, string> {
    const now = this.clock.now();
    const b = this.bucket(key, now);
    return rateLimitHeaders(this.config.burst, b.remaining(now), b.msUntilToken(now), b.msUntilFull(now));
  }

  /** Distinct keys held (for tests and /clusters). */
  get keys(): number {
    return this.keyed?.size ?? 1;
  }

  async close(): Promise<void> {
    this.keyed?.clear();
  }
}
