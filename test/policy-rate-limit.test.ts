// Rate limiting, unit level: the stage with a fake clock and a fake upstream.
import t from 'tap';
import type { IncomingMessage } from 'node:http';
import { decodePolicyObjects } from '../proxy/config';
import { ProxyError } from '../proxy/errors';
import { createProxyMetrics } from '../proxy/observability/metrics';
import { silentLogger } from '../proxy/runtime/logger';
import type { Clock } from '../proxy/runtime/clock';
import type { Handler, RequestContext } from '../proxy/pipeline';
import { createRateLimitPolicy, TokenBucket, LocalLimiter } from '../proxy/policies/rate-limit';
import { GlobalLimiter } from '../proxy/policies/rate-limit/shared-budget';
import type { RedisLink } from '../proxy/policies/rate-limit/redis-link';
import type Bottleneck from 'bottleneck';

class FakeClock implements Clock {
  t = 1000;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private seq = 0;
  now() { return this.t; }
  setTimeout(fn: () => void, ms: number) { const id = ++this.seq; this.timers.set(id, { at: this.t + ms, fn }); return id; }
  clearTimeout(h: unknown) { this.timers.delete(h as number); }
  advance(ms: number) { this.t += ms; for (const [id, x] of [...this.timers]) if (x.at <= this.t) { this.timers.delete(id); x.fn(); } }
}

function policyOf(spec: Record<string, unknown>) {
  return decodePolicyObjects([{ apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'p' }, spec: { service: 'svc', ...spec } }])[0]!;
}

function setup(spec: Record<string, unknown>, maxKeys?: number) {
  const clock = new FakeClock();
  const metrics = createProxyMetrics();
  const policy = policyOf(spec);
  const runtime = createRateLimitPolicy(policy, { clock, metrics, logger: silentLogger, redisUrl: undefined, selfService: 'svc' }, { maxKeys });
  let hits = 0;
  const upstream: Handler = async () => { hits++; return { statusCode: 200 } as IncomingMessage; };
  const handler = runtime!.stage(upstream);
  const send = async (opts: { ip?: string; headers?: Record<string, string>; path?: string; method?: string } = {}) => {
    const method = opts.method ?? 'GET';
    const path = opts.path ?? '/';
    const route = policy.routes.find((r) => (!r.match.pathPrefix || path.startsWith(r.match.pathPrefix)) && (!r.match.methods || r.match.methods.includes(method)));
    const ctx = { service: 'svc', clientIp: opts.ip ?? '10.0.0.1', method, path, policy, route, slots: new Map() } as unknown as RequestContext;
    const req = { headers: opts.headers ?? {} } as unknown as IncomingMessage;
    try {
      await handler(req, ctx, {});
      return { status: 200, headers: {} as Record<string, string> };
    } catch (err) {
      if (!(err instanceof ProxyError)) throw err;
      return { status: err.status, reason: err.reason, headers: { ...err.headers } };
    }
  };
  const burst = async (n: number, opts?: Parameters<typeof send>[0]) => {
    let ok = 0;
    for (let i = 0; i < n; i++) if ((await send(opts)).status === 200) ok++;
    return ok;
  };
  return { clock, metrics, runtime: runtime!, send, burst, hits: () => hits };
}

t.test('no rateLimit anywhere: no stage', async (t) => {
  const clock = new FakeClock();
  t.equal(createRateLimitPolicy(policyOf({}), { clock, metrics: createProxyMetrics(), logger: silentLogger, redisUrl: undefined, selfService: 'svc' }), undefined);
  t.equal(createRateLimitPolicy(undefined, { clock, metrics: createProxyMetrics(), logger: silentLogger, redisUrl: undefined, selfService: 'svc' }), undefined);
});

t.test('token bucket: burst, then the refill rate', async (t) => {
  const b = new TokenBucket(10, 5, 0);
  let ok = 0;
  for (let i = 0; i < 20; i++) if (b.take(0)) ok++;
  t.equal(ok, 5, 'the burst is available at once');
  t.notOk(b.take(50), 'half a token after 50 ms is not enough');
  t.ok(b.take(100), 'one token after 100 ms at 10/s');
  t.notOk(b.take(100));
  t.equal(b.msUntilToken(100), 100);
  t.equal(b.msUntilFull(100), 500);
  t.notOk(b.isFull(500));
  t.ok(b.isFull(600));
  ok = 0;
  for (let i = 0; i < 20; i++) if (b.take(10_000)) ok++;
  t.equal(ok, 5, 'a long idle period refills to the burst, not beyond');
});

t.test('over the limit: 429 rate-limited with the rate-limit headers', async (t) => {
  const s = setup({ rateLimit: { requestsPerSecond: 2, burst: 3 } });
  t.equal(await s.burst(3), 3);
  const r = await s.send();
  t.equal(r.status, 429);
  t.equal(r.reason, 'rate-limited');
  t.same(r.headers, { 'retry-after': '1', 'x-ratelimit-limit': '3', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '2' });
  t.equal(s.hits(), 3, 'refused requests never reach the upstream');
  s.clock.advance(500);
  t.equal((await s.send()).status, 200, 'one token back after 1/rps');
  t.equal((await s.send()).status, 429);
  const text = await s.metrics.registry.metrics();
  t.match(text, /pillion_ratelimit_limited_total\{service="svc"\} 2/);
  await s.runtime.close?.();
});

t.test('steady rate: admitted ~= burst + rps * elapsed', async (t) => {
  const s = setup({ rateLimit: { requestsPerSecond: 100, burst: 10 } });
  let ok = 0;
  for (let ms = 0; ms < 1000; ms++) { // 1,000 requests/s offered for one fake second
    if ((await s.send()).status === 200) ok++;
    s.clock.advance(1);
  }
  t.ok(ok >= 10 + 99 && ok <= 10 + 100, `admitted ${ok}`);
});

t.test('key client-ip: one bucket per address', async (t) => {
  const s = setup({ rateLimit: { requestsPerSecond: 1, burst: 2, key: 'client-ip' } });
  t.equal(await s.burst(5, { ip: '10.0.0.1' }), 2);
  t.equal(await s.burst(5, { ip: '10.0.0.2' }), 2, 'another client has its own budget');
  t.equal(await s.burst(5, { ip: '10.0.0.1' }), 0);
});

t.test('key header:NAME: one bucket per header value, missing header shares one', async (t) => {
  const s = setup({ rateLimit: { requestsPerSecond: 1, burst: 2, key: 'header:x-tenant' } });
  t.equal(await s.burst(5, { headers: { 'x-tenant': 'a' } }), 2);
  t.equal(await s.burst(5, { headers: { 'x-tenant': 'b' } }), 2);
  t.equal(await s.burst(5, { headers: {} }), 2);
  t.equal(await s.burst(5, { headers: { 'x-tenant': 'a' } }), 0);
});

t.test('keys: idle ones expire and memory stays bounded under a flood of keys', async (t) => {
  const clock = new FakeClock();
  const cfg = policyOf({ rateLimit: { requestsPerSecond: 10, burst: 10, key: 'client-ip' } }).rateLimit!;
  const limiter = new LocalLimiter(cfg, clock, 100);
  for (let i = 0; i < 5000; i++) limiter.admit(`10.1.${i >> 8}.${i & 255}`);
  t.ok(limiter.keys <= 100, `at most maxKeys held (${limiter.keys})`);
  clock.advance(2000); // every bucket has refilled: they are worth nothing
  for (let i = 0; i < 50; i++) limiter.admit(`10.2.0.${i}`);
  t.ok(limiter.keys <= 100, `idle keys were swept (${limiter.keys})`);
  // A recently used key keeps its (empty) bucket while new keys arrive.
  for (let i = 0; i < 10; i++) limiter.admit('busy');
  t.notOk(limiter.admit('busy'));
  for (let i = 0; i < 20; i++) limiter.admit(`10.3.0.${i}`);
  t.notOk(limiter.admit('busy'), 'a busy key is not forgiven by the sweep');
});

t.test('per-route override: its own rate, its own bucket', async (t) => {
  const s = setup({
    rateLimit: { requestsPerSecond: 100, burst: 100 },
    routes: [{ match: { pathPrefix: '/admin', methods: ['POST'] }, rateLimit: { requestsPerSecond: 1, burst: 2 } }],
  });
  t.equal(await s.burst(10, { path: '/admin/x', method: 'POST' }), 2, 'route limit applies');
  const r = await s.send({ path: '/admin/x', method: 'POST' });
  t.equal(r.headers['x-ratelimit-limit'], '2');
  t.equal(await s.burst(10, { path: '/admin/x', method: 'GET' }), 10, 'other methods use the service limit');
  t.equal(await s.burst(10, { path: '/public' }), 10);
});

t.test('route-only rate limit leaves other paths unlimited', async (t) => {
  const s = setup({ routes: [{ match: { pathPrefix: '/slow' }, rateLimit: { requestsPerSecond: 1, burst: 1 } }] });
  t.equal(await s.burst(3, { path: '/slow' }), 1);
  t.equal(await s.burst(50, { path: '/fast' }), 50);
});

// scope: global, with a fake Redis link and a fake Bottleneck reservoir, so that the moment
// between Redis coming back and its first answer can be held open and looked at.
t.test('global scope: fail open while redis is down and until its first answer after it returns', async (t) => {
  const clock = new FakeClock();
  const upListeners = new Set<() => void>();
  const link = {
    up: true, failOpen: 0, errors: 0,
    onUp(fn: () => void) { upListeners.add(fn); return () => upListeners.delete(fn); },
    countFailOpen() { this.failOpen++; },
    noteError() { this.errors++; },
    connection: undefined,
  };
  // The reservoir answers when the test says so: each pending call waits in `answers`.
  const answers: Array<(n: number) => void> = [];
  const reservoir = {
    currentReservoir: () => new Promise<number>((resolve) => answers.push(resolve)),
    schedule: (_o: unknown, fn: () => Promise<void>) => fn(),
    on() {},
    disconnect() {},
    queued: () => 0,
  };
  const answer = async (n: number) => {
    answers.shift()?.(n);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  const config = policyOf({ rateLimit: { requestsPerSecond: 10, burst: 10, key: 'none', scope: 'global' } }).rateLimit!;
  const limiter = new GlobalLimiter(config, 'svc:p', link as unknown as RedisLink, clock, 100, () => reservoir as unknown as Bottleneck);
  t.teardown(() => limiter.close());

  // Up: the first batch (plus the new key's credit) is spent, then the budget refuses.
  await answer(100);
  let admitted = 0;
  for (let i = 0; i < 5; i++) if (limiter.admit('')) admitted++;
  t.ok(admitted >= 1 && admitted < 5, `the shared budget is enforced (${admitted} of 5)`);
  await answer(0); // the reservoir is empty now
  t.notOk(limiter.admit(''), 'refused while the shared reservoir is empty');

  // Down: fail open.
  link.up = false;
  const failOpenBefore = link.failOpen;
  t.ok(limiter.admit('') && limiter.admit(''), 'redis down: admitted');
  t.equal(link.failOpen - failOpenBefore, 2, 'and counted as fail-open');

  // Back: nothing has been heard from the new redis yet, so still open (this refused everything before).
  clock.advance(1000); // any poll for the empty reservoir is due
  link.up = true;
  for (const fn of upListeners) fn();
  t.ok(answers.length >= 1, 'the budget asks the returned redis for a batch at once');
  t.ok(limiter.admit('') && limiter.admit('') && limiter.admit(''), 'redis back, no answer yet: still admitted');
  t.equal(link.failOpen - failOpenBefore, 5, 'each counted as fail-open');

  // Redis answers with an empty reservoir: its budget is in force again.
  await answer(0);
  t.notOk(limiter.admit(''), 'once redis has answered, its budget is enforced again');
  t.equal(link.failOpen - failOpenBefore, 5, 'no more fail-open');
});
