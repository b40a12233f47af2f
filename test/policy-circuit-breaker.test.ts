// Circuit breaking, unit level: the stage around a fake upstream that counts its hits.
import t from 'tap';
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { decodePolicyObjects } from '../proxy/config';
import { ProxyError, UpstreamUnreachableError, RateLimitedError } from '../proxy/errors';
import { createProxyMetrics } from '../proxy/observability/metrics';
import type { Handler, RequestContext } from '../proxy/pipeline';
import { createCircuitBreakerPolicy } from '../proxy/policies/circuit-breaker';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function policyOf(cb: Record<string, unknown> | undefined) {
  return decodePolicyObjects([{ apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'p' }, spec: { service: 'ratings', ...(cb ? { circuitBreaker: cb } : {}) } }])[0]!;
}

/** A response object that ends when the test says so (or at once). */
function fakeResponse(status: number, endNow = true): IncomingMessage {
  const s = new PassThrough() as unknown as IncomingMessage & PassThrough;
  (s as { statusCode?: number }).statusCode = status;
  if (endNow) { s.end(); s.resume(); }
  return s;
}

function setup(cb: Record<string, unknown>) {
  const metrics = createProxyMetrics();
  const runtime = createCircuitBreakerPolicy(policyOf(cb), { metrics })!;
  let hits = 0;
  let behaviour: () => Promise<IncomingMessage> = async () => fakeResponse(200);
  const upstream: Handler = () => { hits++; return behaviour(); };
  const handler = runtime.stage(upstream);
  const ctx = { service: 'ratings', slots: new Map() } as unknown as RequestContext;
  const send = async (): Promise<{ status: number; reason?: string }> => {
    try {
      const res = await handler({} as IncomingMessage, ctx, {});
      return { status: res.statusCode! };
    } catch (err) {
      if (err instanceof ProxyError) return { status: err.status, reason: err.reason };
      throw err;
    }
  };
  const gauge = async () => Number(/pillion_circuit_state\{service="ratings"\} (\d)/.exec(await metrics.registry.metrics())?.[1]);
  return { runtime, send, hits: () => hits, setUpstream: (f: typeof behaviour) => { behaviour = f; }, gauge, metrics };
}

t.test('no circuitBreaker: no stage', async (t) => {
  t.equal(createCircuitBreakerPolicy(policyOf(undefined), { metrics: createProxyMetrics() }), undefined);
});

t.test('5xx past the threshold opens it; open answers at once without the upstream', async (t) => {
  const s = setup({ errorThresholdPercentage: 50, volumeThreshold: 4, windowSeconds: 10, resetTimeout: '150ms' });
  t.teardown(() => s.runtime.close?.());
  t.equal(await s.gauge(), 0);
  s.setUpstream(async () => fakeResponse(503));
  for (let i = 0; i < 4; i++) t.equal((await s.send()).status, 503, 'the upstream 503 is passed on');
  await sleep(5); // the bodies' end events
  t.same(s.runtime.describe!(), { breaker: 'open', inFlight: 0 });
  t.equal(await s.gauge(), 1);
  const before = s.hits();
  for (let i = 0; i < 10; i++) t.same(await s.send(), { status: 503, reason: 'circuit-open' });
  t.equal(s.hits(), before, 'no upstream hit while open');

  // After resetTimeout: half-open, exactly one probe; a failing probe reopens it.
  await sleep(200);
  t.equal(s.runtime.describe!().breaker, 'half-open');
  t.equal(await s.gauge(), 2);
  let release!: () => void;
  s.setUpstream(() => new Promise((r) => { release = () => r(fakeResponse(500)); }));
  const probe = s.send();
  const others = await Promise.all([s.send(), s.send(), s.send()]);
  t.same(others.map((o) => o.reason), ['circuit-open', 'circuit-open', 'circuit-open'], 'one probe only');
  t.equal(s.hits(), before + 1);
  release();
  t.equal((await probe).status, 500);
  t.equal(s.runtime.describe!().breaker, 'open', 'a failed probe reopens it');

  // Next probe succeeds: closed again, traffic flows.
  await sleep(200);
  s.setUpstream(async () => fakeResponse(200));
  t.equal((await s.send()).status, 200);
  t.equal(s.runtime.describe!().breaker, 'closed');
  t.equal(await s.gauge(), 0);
  for (let i = 0; i < 5; i++) t.equal((await s.send()).status, 200);
});

t.test('connect failures count; 4xx and local replies do not', async (t) => {
  const s = setup({ errorThresholdPercentage: 50, volumeThreshold: 4, windowSeconds: 10, resetTimeout: '10s' });
  t.teardown(() => s.runtime.close?.());
  s.setUpstream(async () => fakeResponse(404));
  for (let i = 0; i < 10; i++) await s.send();
  s.setUpstream(async () => { throw new RateLimitedError({}); });
  for (let i = 0; i < 10; i++) t.equal((await s.send()).reason, 'rate-limited');
  t.equal(s.runtime.describe!().breaker, 'closed', '4xx and local 429s are not failures');
  s.setUpstream(async () => { throw new UpstreamUnreachableError('connect-failure', 'ECONNREFUSED'); });
  for (let i = 0; i < 30; i++) await s.send();
  t.equal(s.runtime.describe!().breaker, 'open', 'connect failures are');
});

t.test('maxConcurrent: beyond it, 503 overflow; the slot is held until the body is done', async (t) => {
  const s = setup({ maxConcurrent: 2 });
  t.teardown(() => s.runtime.close?.());
  const pending: Array<() => void> = [];
  s.setUpstream(() => new Promise((r) => pending.push(() => r(fakeResponse(200, false)))));
  const a = s.send(), b = s.send();
  t.same(await s.send(), { status: 503, reason: 'overflow' });
  t.equal(s.hits(), 2);
  t.equal(s.runtime.describe!().inFlight, 2);
  pending.forEach((p) => p());
  await Promise.all([a, b]);
  t.same(await s.send(), { status: 503, reason: 'overflow' }, 'headers arrived, bodies still streaming');
  t.equal(s.runtime.describe!().inFlight, 2);
});

t.test('close shuts the breaker down: no timers left, gauge series removed', async (t) => {
  // Watch every timer the breaker starts (opossum unrefs them, so they would not hold the
  // process open and a leak would go unnoticed otherwise).
  const live = new Set<unknown>();
  const g = globalThis as unknown as Record<string, (...a: unknown[]) => unknown>;
  const orig = { setTimeout: g.setTimeout!, setInterval: g.setInterval!, clearTimeout: g.clearTimeout!, clearInterval: g.clearInterval! };
  g.setTimeout = (fn: unknown, ...rest: unknown[]) => {
    const h: unknown = orig.setTimeout((...a: unknown[]) => { live.delete(h); (fn as (...x: unknown[]) => void)(...a); }, ...rest);
    live.add(h);
    return h;
  };
  g.setInterval = (...a: unknown[]) => { const h = orig.setInterval(...a); live.add(h); return h; };
  g.clearTimeout = (h: unknown) => { live.delete(h); return orig.clearTimeout(h); };
  g.clearInterval = (h: unknown) => { live.delete(h); return orig.clearInterval(h); };
  t.teardown(() => Object.assign(g, orig));

  const s = setup({ volumeThreshold: 1, resetTimeout: '60m' });
  s.setUpstream(async () => fakeResponse(502));
  await s.send();
  await s.send();
  t.equal(s.runtime.describe!().breaker, 'open');
  t.ok(live.size >= 2, `the window interval and the reset timer run (${live.size})`);
  s.runtime.close?.();
  t.equal(live.size, 0, 'every timer cleared');
  t.notMatch(await s.metrics.registry.metrics(), /pillion_circuit_state\{service="ratings"\}/);
});
