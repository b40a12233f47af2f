// The retry stage's own counters (pillion_retries_total lives in the proxy's metrics),
// registered once per proxy registry.
import { Counter, Registry } from 'prom-client';

export interface RetryMetrics {
  readonly budgetExhausted: Counter<'service'>;
}

const cache = new WeakMap<Registry, RetryMetrics>();

export function retryMetrics(registry: Registry): RetryMetrics {
  let m = cache.get(registry);
  if (!m) {
    m = {
      budgetExhausted: new Counter({
        name: 'pillion_retry_budget_exhausted_total', help: 'Retries not attempted because the retry budget (20% of requests, at least 10/s) was spent.',
        labelNames: ['service'] as const, registers: [registry],
      }),
    };
    cache.set(registry, m);
  }
  return m;
}
