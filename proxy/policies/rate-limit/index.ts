// Rate limiting (`rateLimit`, inbound): token buckets per key, per route, local or shared via Redis.
import type { IncomingMessage } from 'node:http';
import type { RateLimitConfig, RateLimitKey, RouteConfig, TrafficPolicy } from '../../config';
import { RateLimitedError } from '../../errors';
import type { RequestContext, Stage } from '../../pipeline';
import type { PolicyDeps, PolicyRuntime } from '../../listeners/policy-runtime';
import { DEFAULT_MAX_KEYS, Limiter, LocalLimiter } from './limiter';
import { rateLimitMetrics } from './metrics';
import { RedisLink } from './redis-link';
import { GlobalLimiter } from './shared-budget';

export { TokenBucket } from './token-bucket';
export { LocalLimiter } from './limiter';
export { GlobalLimiter, planShared } from './shared-budget';

export interface RateLimitOptions {
  /** Distinct keys kept per limiter before the least recently used is dropped. */
  readonly maxKeys?: number;
}

/** Header values longer than this are cut, so a key cannot cost more memory than this. */
const MAX_KEY_LENGTH = 256;

function keyOf(key: RateLimitKey, req: IncomingMessage, ctx: RequestContext): string {
  switch (key.kind) {
    case 'none': return '';
    case 'client-ip': return ctx.clientIp;
    case 'header': {
      const v = req.headers[key.name];
      const s = v === undefined ? '' : Array.isArray(v) ? v.join(',') : v;
      return s.length > MAX_KEY_LENGTH ? s.slice(0, MAX_KEY_LENGTH) : s;
    }
  }
}

export function createRateLimitPolicy(policy: TrafficPolicy | undefined, deps: PolicyDeps, options: RateLimitOptions = {}): PolicyRuntime | undefined {
  if (!policy) return undefined;
  const routeConfigs = policy.routes.filter((r) => r.rateLimit !== undefined);
  if (!policy.rateLimit && routeConfigs.length === 0) return undefined;

  const service = policy.service;
  const metrics = rateLimitMetrics(deps.metrics.registry);
  const limitedCounter = metrics.limited.labels(service);
  const maxKeys = options.maxKeys ?? DEFAULT_MAX_KEYS;
  const wantsGlobal = [policy.rateLimit, ...routeConfigs.map((r) => r.rateLimit)].some((c) => c?.scope === 'global');
  let link: RedisLink | undefined;
  if (wantsGlobal && deps.redisUrl) link = new RedisLink(deps.redisUrl, deps.logger, metrics, service);
  else if (wantsGlobal) deps.logger.warn('rateLimit scope global without --redis or PILLION_REDIS_URL: limiting per proxy', { service });

  const build = (config: RateLimitConfig, name: string): Limiter =>
    config.scope === 'global' && link ? new GlobalLimiter(config, `${service}:${name}`, link, deps.clock, maxKeys) : new LocalLimiter(config, deps.clock, maxKeys);

  const serviceLimiter = policy.rateLimit ? build(policy.rateLimit, 'service') : undefined;
  // Keyed by the decoded route object: the listener hands us the very object it matched.
  const routeLimiters = new Map<RouteConfig, { limiter: Limiter; config: RateLimitConfig }>();
  policy.routes.forEach((route, i) => {
    if (route.rateLimit) routeLimiters.set(route, { limiter: build(route.rateLimit, `route${i}`), config: route.rateLimit });
  });
  const all = [...(serviceLimiter ? [serviceLimiter] : []), ...[...routeLimiters.values()].map((r) => r.limiter)];

  const stage: Stage = (next) => (req, ctx, attempt) => {
    let limiter = serviceLimiter;
    let key = policy.rateLimit?.key;
    const route = ctx.route;
    if (route !== undefined && route.rateLimit !== undefined) {
      const r = routeLimiters.get(route);
      if (r) { limiter = r.limiter; key = r.config.key; }
    }
    if (limiter !== undefined) {
      const k = keyOf(key!, req, ctx);
      if (!limiter.admit(k)) {
        limitedCounter.inc();
        return Promise.reject(new RateLimitedError(limiter.refusalHeaders(k)));
      }
    }
    return next(req, ctx, attempt);
  };

  return {
    stage,
    describe: () => ({
      rateLimit: policy.rateLimit
        ? { requestsPerSecond: policy.rateLimit.requestsPerSecond, burst: policy.rateLimit.burst, scope: policy.rateLimit.scope, redis: link ? (link.up ? 'up' : 'down') : undefined }
        : undefined,
    }),
    close: async () => {
      await Promise.all(all.map((l) => l.close()));
      await link?.close();
    },
  };
}
