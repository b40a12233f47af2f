// Retries, unit level: the stage with a fake clock, fake randomness and a scripted upstream.
import t from 'tap';
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { decodePolicyObjects } from '../proxy/config';
import { ProxyError, UpstreamUnreachableError, UpstreamTimeoutError, CircuitOpenError } from '../proxy/errors';
import { createProxyMetrics } from '../proxy/observability/metrics';
import { FakeClock } from './helpers/fake-clock';
import { compose, Handler, RequestContext, AttemptOptions } from '../proxy/pipeline';
import { createRetryPolicy, backoffMs, RetryBudget } from '../proxy/policies/retry';
import { createTimeoutPolicy } from '../proxy/policies/timeout';

const tick = () => new Promise((r) => setImmediate(r));

function policyOf(spec: Record<string, unknown>) {
  return decodePolicyObjects([{ apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'p' }, spec: { service: 'ratings', ...spec } }])[0]!;
}

function response(status: number) {
  const s = new PassThrough() as unknown as IncomingMessage & PassThrough;
  (s as { statusCode?: number }).statusCode = status;
  s.end('body');
  return s;
}

type Step = number | Error | 'hang';
function setup(spec: Record<string, unknown>, script: Step[], opts: { withTimeout?: boolean; random?: () => number } = {}) {
  const clock = new FakeClock();
  const metrics = createProxyMetrics();
  const policy = policyOf(spec);
  const runtime = createRetryPolicy(policy, { clock, metrics }, { random: opts.random ?? (() => 0.5) });
  const signals: (AbortSignal | undefined)[] = [];
  const responses: (IncomingMessage & PassThrough)[] = [];
  let i = 0;
  const upstream: Handler = (_req, _ctx, attempt: AttemptOptions) => {
    signals.push(attempt.signal);
    const step = script[Math.min(i++, script.length - 1)]!;
    if (step === 'hang') return new Promise((_r, reject) => attempt.signal?.addEventListener('abort', () => reject(attempt.signal!.reason)));
    if (step instanceof Error) return Promise.reject(step);
    const r = response(step);
    responses.push(r);
    return Promise.resolve(r);
  };
  const stages = [opts.withTimeout ? createTimeoutPolicy(policy, { clock }).stage : undefined, runtime?.stage];
  const handler = compose(stages, upstream);
  const controller = new AbortController();
  const newCtx = (route?: unknown) => ({ service: 'ratings', policy, route, clientGone: controller.signal, replayBody: undefined, attemptCount: 0, slots: new Map() }) as unknown as RequestContext;
  const send = async (req: IncomingMessage = { headers: {} } as IncomingMessage, ctx = newCtx()): Promise<{ status: number; reason?: string; err?: unknown }> => {
    try {
      return { status: (await handler(req, ctx, {})).statusCode! };
    } catch (err) {
      if (err instanceof ProxyError) return { status: err.status, reason: err.reason, err };
      throw err;
    }
  };
  const retries = async () => Number(/pillion_retries_total\{service="ratings"\} (\d+)/.exec(await metrics.registry.metrics())?.[1] ?? 0);
  return { clock, runtime, send, signals, responses, retries, hits: () => i, newCtx, metrics };
}

/** Run `p` while stepping the fake clock in small increments. */
async function drive<T>(clock: FakeClock, p: Promise<T>, stepMs = 5, maxMs = 60_000): Promise<T> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  for (let elapsed = 0; !done && elapsed <= maxMs; elapsed += stepMs) {
    await tick();
    if (!done) clock.advance(stepMs);
  }
  return p;
}

const refused = () => new UpstreamUnreachableError('connect-failure', 'ECONNREFUSED');
const reset = () => new UpstreamUnreachableError('reset', 'ECONNRESET');

t.test('no retries configured: no stage', async (t) => {
  t.equal(createRetryPolicy(policyOf({}), { clock: new FakeClock(), metrics: createProxyMetrics() }), undefined);
  t.ok(createRetryPolicy(policyOf({ retries: { perTryTimeout: '1s' } }), { clock: new FakeClock(), metrics: createProxyMetrics() }), 'a per-try timeout alone needs the stage');
});

t.test('connect failures and resets are retried up to attempts, then the last error', async (t) => {
  const s = setup({ retries: { attempts: 2 } }, [refused(), reset(), 200]);
  t.same(await drive(s.clock, s.send()), { status: 200 });
  t.equal(s.hits(), 3);
  t.equal(await s.retries(), 2, 'pillion_retries_total counts retries, not first tries');

  const s2 = setup({ retries: { attempts: 2 } }, [refused()]);
  const r = await drive(s2.clock, s2.send());
  t.equal(r.reason, 'upstream-unreachable');
  t.equal(s2.hits(), 3, 'one try plus two retries');
});

t.test('on: status conditions', async (t) => {
  const cases: Array<[unknown[], number, boolean]> = [
    [['gateway-error'], 502, true], [['gateway-error'], 503, true], [['gateway-error'], 504, true], [['gateway-error'], 500, false],
    [['5xx'], 500, true], [['5xx'], 599, true], [['5xx'], 404, false],
    [['503'], 503, true], [['503'], 502, false], [[409], 409, true],
    [['connect-failure'], 503, false],
  ];
  for (const [on, status, retried] of cases) {
    const s = setup({ retries: { attempts: 1, on } }, [status, 200]);
    const r = await drive(s.clock, s.send());
    t.equal(r.status, retried ? 200 : status, `on ${JSON.stringify(on)}, upstream ${status}: ${retried ? 'retried' : 'passed on'}`);
    if (retried) t.ok(s.responses[0]!.readableFlowing, 'the discarded response is drained');
  }
  const s = setup({ retries: { attempts: 3, on: ['reset'] } }, [refused(), 200]);
  t.equal((await drive(s.clock, s.send())).reason, 'upstream-unreachable', 'connect-failure not listed: not retried');
  const s2 = setup({ retries: { attempts: 3, on: ['5xx'] } }, [refused(), 200]);
  t.equal((await drive(s2.clock, s2.send())).status, 200, '5xx covers a refused connection (it would be a 503)');
  const s3 = setup({ retries: { attempts: 3, on: ['5xx'] } }, [new CircuitOpenError('ratings'), 200]);
  t.equal((await drive(s3.clock, s3.send())).reason, 'circuit-open', 'local replies of inner stages are not retried');
});

t.test('perTryTimeout: each attempt gets its own deadline and signal; the last one answers 504', async (t) => {
  const s = setup({ retries: { attempts: 2, perTryTimeout: '100ms' } }, ['hang', 'hang', 200]);
  t.same(await drive(s.clock, s.send()), { status: 200 });
  t.equal(s.signals.length, 3);
  t.ok(s.signals[0]!.aborted && s.signals[1]!.aborted, 'timed-out attempts were aborted');
  t.notOk(s.signals[2]!.aborted);
  t.not(s.signals[0], s.signals[1]);

  const s2 = setup({ retries: { attempts: 1, perTryTimeout: '100ms' } }, ['hang']);
  const r = await drive(s2.clock, s2.send());
  t.equal(r.reason, 'upstream-timeout');
  t.equal((r.err as UpstreamTimeoutError).scope, 'per-try');
  t.equal(s2.hits(), 2);
});

t.test('backoff: jittered exponential from 25 ms, capped at 250 ms', async (t) => {
  t.equal(backoffMs(1, () => 0.999999).toFixed(0), '25');
  t.equal(backoffMs(2, () => 0.999999).toFixed(0), '75');
  t.equal(backoffMs(3, () => 0.999999).toFixed(0), '175');
  t.equal(backoffMs(4, () => 0.999999).toFixed(0), '250');
  t.equal(backoffMs(9, () => 0.5), 125);
  t.equal(backoffMs(3, () => 0), 0);
  const s = setup({ retries: { attempts: 4 } }, [refused()], { random: () => 0.5 });
  await drive(s.clock, s.send(), 1);
  t.same(s.clock.requested, [12.5, 37.5, 87.5, 125], 'the stage waits the backoff between attempts');
  t.equal(s.clock.pending, 0, 'no timer left behind');
});

t.test('the overall timeout bounds all attempts and backoffs', async (t) => {
  const s = setup({ timeout: '300ms', retries: { attempts: 10, perTryTimeout: '100ms' } }, ['hang'], { withTimeout: true, random: () => 0.9 });
  const started = s.clock.now();
  const r = await drive(s.clock, s.send(), 1);
  t.equal(r.reason, 'upstream-timeout');
  t.equal((r.err as UpstreamTimeoutError).scope, 'overall');
  t.ok(s.clock.now() - started <= 302, `gave up at the deadline (${s.clock.now() - started} ms)`);
  t.ok(s.hits() < 11, `not every attempt was made (${s.hits()})`);
  await drive(s.clock, Promise.resolve(), 1, 2000);
  t.equal(s.clock.pending, 0, 'no backoff or per-try timer left behind');
});

t.test('retry budget: at most 20% of requests, with a floor of 10 per second', async (t) => {
  const clock = new FakeClock();
  const b = new RetryBudget(clock);
  let granted = 0;
  for (let i = 0; i < 30; i++) { b.recordRequest(); if (b.tryRetry()) granted++; }
  t.equal(granted, 10, 'the floor: 10 in a second even at 30 requests');
  for (let i = 0; i < 170; i++) { b.recordRequest(); if (b.tryRetry()) granted++; }
  t.equal(granted, 40, '20% of 200 requests');
  clock.advance(1000);
  b.recordRequest();
  t.ok(b.tryRetry(), 'a new second, a new budget');

  // Through the stage: a dead upstream and 100 requests with attempts: 3 in one fake second.
  const s = setup({ retries: { attempts: 3 } }, [refused()], { random: () => 0 });
  for (let i = 0; i < 100; i++) await drive(s.clock, s.send(), 0.01);
  t.ok(s.clock.now() < 1000);
  t.equal(await s.retries(), 20, 'retries capped at 20% of 100 requests');
  t.equal(s.hits(), 120);
  t.match(await s.metrics.registry.metrics(), /pillion_retry_budget_exhausted_total\{service="ratings"\} \d+/);
});

function fakeRequest(headers: Record<string, string>, body?: Buffer): IncomingMessage {
  const r = new PassThrough() as unknown as IncomingMessage & PassThrough;
  (r as { headers: Record<string, string> }).headers = headers;
  if (body) r.end(body); else r.end();
  return r;
}

t.test('request bodies: up to 64 KiB buffered for replay, larger or chunked ones are not retried', async (t) => {
  const small = Buffer.alloc(1000, 'a');
  const s = setup({ retries: { attempts: 2 } }, [refused(), 200]);
  const ctx = s.newCtx();
  t.equal((await drive(s.clock, s.send(fakeRequest({ 'content-length': '1000' }, small), ctx))).status, 200);
  t.same(ctx.replayBody, small, 'the body was kept for the second attempt');

  const big = Buffer.alloc(64 * 1024 + 1, 'b');
  const s2 = setup({ retries: { attempts: 2 } }, [refused(), 200]);
  const ctx2 = s2.newCtx();
  t.equal((await drive(s2.clock, s2.send(fakeRequest({ 'content-length': String(big.length) }, big), ctx2))).reason, 'upstream-unreachable');
  t.equal(s2.hits(), 1, 'a large body gets one try');
  t.equal(ctx2.replayBody, undefined);

  const s3 = setup({ retries: { attempts: 2 } }, [refused(), 200]);
  t.equal((await drive(s3.clock, s3.send(fakeRequest({ 'transfer-encoding': 'chunked' }, small)))).reason, 'upstream-unreachable');
  t.equal(s3.hits(), 1, 'a streamed body of unknown length gets one try');

  const s4 = setup({ retries: { attempts: 2 } }, [refused(), 200]);
  t.equal((await drive(s4.clock, s4.send(fakeRequest({})))).status, 200, 'no body: retried');
});

t.test('per-route retries override the service', async (t) => {
  const policy = policyOf({ retries: { attempts: 0 }, routes: [{ match: { pathPrefix: '/r' }, retries: { attempts: 2 } }] });
  const s = setup({ retries: { attempts: 0 }, routes: [{ match: { pathPrefix: '/r' }, retries: { attempts: 2 } }] }, [refused(), refused(), 200]);
  t.equal((await drive(s.clock, s.send(undefined, s.newCtx(policy.routes[0])))).status, 200);
  t.equal(s.hits(), 3);
  const s2 = setup({ retries: { attempts: 0 }, routes: [{ match: { pathPrefix: '/r' }, retries: { attempts: 2 } }] }, [refused(), 200]);
  t.equal((await drive(s2.clock, s2.send())).reason, 'upstream-unreachable', 'outside the route: the service has none');
});
