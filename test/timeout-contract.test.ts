// The contract the deadlines rely on (proxy/policies/timeout): nothing races a timer against the
// stages below a deadline, so every stage must give up as soon as its signal aborts, wherever
// the request is waiting: in an attempt, in a retry's backoff, or reading a body to replay.
// Run through the real outbound stack (timeout, retries, breaker) on the real clock.
import t from 'tap';
import { PassThrough } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { decodePolicyObjects, TrafficPolicy } from '../proxy/config';
import { ProxyError, UpstreamUnreachableError } from '../proxy/errors';
import { createProxyMetrics } from '../proxy/observability/metrics';
import { systemClock } from '../proxy/runtime/clock';
import { silentLogger } from '../proxy/runtime/logger';
import { CancelSignal, compose, Handler, RequestContext } from '../proxy/pipeline';
import { createRetryPolicy } from '../proxy/policies/retry';
import { createTimeoutPolicy } from '../proxy/policies/timeout';
import { buildOutboundStack } from '../proxy/listeners/stacks';

const TIMEOUT_MS = 150;

function policyOf(spec: Record<string, unknown>) {
  return decodePolicyObjects([{ apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'p' }, spec: { service: 'ratings', ...spec } }])[0]!;
}

function ctxFor(policy: TrafficPolicy): RequestContext {
  return {
    service: 'ratings', policy, route: undefined, clientGone: new CancelSignal(), replayBody: undefined, attemptCount: 0,
    slots: new Map(), peekSlot: () => undefined,
  } as unknown as RequestContext;
}

function stackWith(terminal: Handler, retries: Record<string, unknown>) {
  const policy = policyOf({
    timeout: `${TIMEOUT_MS}ms`, retries,
    circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 100, windowSeconds: 10, resetTimeout: '10s' },
  });
  const deps = { clock: systemClock, metrics: createProxyMetrics(), logger: silentLogger, redisUrl: undefined, selfService: 'me' };
  return { built: buildOutboundStack(policy, deps, terminal), ctx: ctxFor(policy) };
}

/** Like the forwarder: pending until the signal aborts, then rejects with its reason. */
const hangs: Handler = (_req, _ctx, attempt) => new Promise((_resolve, reject) => {
  attempt.signal?.addEventListener('abort', () => reject(attempt.signal!.reason));
});

/** Runs `call` and times it from before the call: the deadline is set inside it. */
async function outcome(call: () => Promise<unknown>): Promise<{ reason: string; ms: number }> {
  const start = performance.now();
  try {
    await call();
    return { reason: 'answered', ms: performance.now() - start };
  } catch (err) {
    return { reason: err instanceof ProxyError ? `${err.reason}:${err.message}` : String(err), ms: performance.now() - start };
  }
}

t.test('the deadline ends a hanging attempt with upstream-timeout', async (t) => {
  const { built, ctx } = stackWith(hangs, { attempts: 0 });
  const r = await outcome(() => built.handler({ headers: {} } as IncomingMessage, ctx, {}));
  t.match(r.reason, /^upstream-timeout:/);
  t.ok(r.ms >= TIMEOUT_MS - 5 && r.ms < TIMEOUT_MS + 500, `at the deadline (${r.ms.toFixed(0)} ms)`);
  await built.close();
});

t.test('the deadline ends a retry backoff at once', async (t) => {
  // Attempts fail at once; with the random part at its top, backoffs are 25, 75, 175 ms, so
  // the deadline (150 ms) falls inside the third: a sleep deaf to it would end at 275 ms.
  const policy = policyOf({ timeout: `${TIMEOUT_MS}ms`, retries: { attempts: 10, on: ['connect-failure'] } });
  const fails: Handler = () => Promise.reject(new UpstreamUnreachableError('connect-failure', 'refused'));
  const metrics = createProxyMetrics();
  const handler = compose([
    createTimeoutPolicy(policy, { clock: systemClock }).stage,
    createRetryPolicy(policy, { clock: systemClock, metrics }, { random: () => 1 })!.stage,
  ], fails);
  const r = await outcome(() => handler({ headers: {} } as IncomingMessage, ctxFor(policy), {}));
  t.match(r.reason, /^upstream-timeout:/);
  t.ok(r.ms < 240, `at the deadline, not at the end of the backoff (${r.ms.toFixed(0)} ms)`);
});

t.test('the deadline ends reading a body for replay', async (t) => {
  const body = new PassThrough();
  body.write('part of a body that never ends');
  const req = Object.assign(body, { headers: { 'content-length': '100' }, method: 'POST' }) as unknown as IncomingMessage;
  const { built, ctx } = stackWith(hangs, { attempts: 2, on: ['connect-failure'] });
  const r = await outcome(() => built.handler(req, ctx, {}));
  t.match(r.reason, /^upstream-timeout:/);
  t.ok(r.ms < TIMEOUT_MS + 500, `at the deadline (${r.ms.toFixed(0)} ms)`);
  body.destroy();
  await built.close();
});
