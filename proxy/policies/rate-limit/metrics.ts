// The rate limiter's own counters, registered once per proxy registry (a new config version
// builds new limiters but must find the same series).
import { Counter, Gauge, Registry } from 'prom-client';

export interface RateLimitMetrics {
  readonly limited: Counter<'service'>;
  readonly failOpen: Counter<'service'>;
  readonly redisErrors: Counter<'service'>;
  readonly redisUp: Gauge<'service'>;
}

const cache = new WeakMap<Registry, RateLimitMetrics>();

export function rateLimitMetrics(registry: Registry): RateLimitMetrics {
  let m = cache.get(registry);
  if (!m) {
    m = {
      limited: new Counter({
        name: 'pillion_ratelimit_limited_total', help: 'Requests refused with 429 rate-limited.',
        labelNames: ['service'] as const, registers: [registry],
      }),
      failOpen: new Counter({
        name: 'pillion_ratelimit_fail_open_total',
        help: 'Requests admitted without the shared (scope: global) budget because Redis was unreachable.',
        labelNames: ['service'] as const, registers: [registry],
      }),
      redisErrors: new Counter({
        name: 'pillion_ratelimit_redis_errors_total', help: 'Errors from the Redis connection behind scope: global rate limits.',
        labelNames: ['service'] as const, registers: [registry],
      }),
      redisUp: new Gauge({
        name: 'pillion_ratelimit_redis_up', help: '1 while the Redis behind scope: global rate limits is reachable, else 0 (failing open).',
        labelNames: ['service'] as const, registers: [registry],
      }),
    };
    cache.set(registry, m);
  }
  return m;
}
