// Retries (`retries`, outbound): attempts, per-try timeout, jittered exponential backoff, retry budget, replayable bodies.
import type { IncomingMessage } from 'node:http';
import type { RetryConfig, TrafficPolicy } from '../../config';
import { UpstreamTimeoutError } from '../../errors';
import { ClientGoneError } from '../../forward/forwarder';
import { announcedBody } from '../../forward/headers';
import type { AttemptOptions, CancelSignal, Handler, RequestContext, Stage } from '../../pipeline';
import type { PolicyDeps, PolicyRuntime } from '../../listeners/policy-runtime';
import type { Clock } from '../../runtime/clock';
import { withDeadline } from '../timeout';
import { DeadlineQueues } from '../../runtime/deadline-queue';
import { RetryBudget, RetryBudgetOptions } from './budget';
import { compileConditions, RetryMatcher } from './conditions';
import { retryMetrics } from './metrics';

export { RetryBudget } from './budget';
export { compileConditions } from './conditions';

/** Bodies up to this size are kept in memory so they can be sent again. */
export const MAX_REPLAY_BYTES = 64 * 1024;
/** Envoy's defaults: 25 ms base, at most ten times that. */
export const BACKOFF_BASE_MS = 25;
export const BACKOFF_MAX_MS = 250;

export interface RetryOptions {
  /** Randomness for the jitter, in [0, 1). */
  readonly random?: () => number;
  readonly budget?: RetryBudgetOptions;
}

/** Full jitter: uniform in [0, base * (2^n - 1)], capped; `n` counts retries from 1. */
export function backoffMs(n: number, random: () => number): number {
  return random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * (2 ** n - 1));
}

type BodyKind = 'none' | 'small' | 'stream';

function bodyKind(req: IncomingMessage): BodyKind {
  const n = announcedBody(req.headers);
  if (n === 'chunked') return 'stream';
  return n === 0 ? 'none' : n <= MAX_REPLAY_BYTES ? 'small' : 'stream';
}

/** The body, read whole; gives up (with the deadline's error) when `signal` aborts. */
function readBody(req: IncomingMessage, signal: CancelSignal | undefined): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      signal?.removeEventListener('abort', onAbort);
    };
    const onData = (c: Buffer) => { chunks.push(c); size += c.length; };
    const onEnd = () => { cleanup(); resolve(Buffer.concat(chunks, size)); };
    const onError = (e: Error) => { cleanup(); reject(e); };
    // The client is gone: nothing to answer (the listener ignores this error).
    const onAborted = () => { cleanup(); reject(new ClientGoneError()); };
    const onAbort = () => { cleanup(); reject(signal!.reason); };
    if (signal?.aborted) return onAbort();
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
    req.once('aborted', onAborted);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function sleep(clock: Clock, ms: number, signals: readonly (CancelSignal | undefined)[]): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const live = signals.filter((s): s is CancelSignal => s !== undefined);
    const aborted = live.find((s) => s.aborted);
    if (aborted) return reject(aborted.reason);
    const onAbort = (ev: { target: CancelSignal }) => {
      clock.clearTimeout(timer);
      for (const s of live) s.removeEventListener('abort', onAbort);
      reject(ev.target.reason);
    };
    const timer = clock.setTimeout(() => {
      for (const s of live) s.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    for (const s of live) s.addEventListener('abort', onAbort, { once: true });
  });
}

interface CompiledRetry {
  readonly config: RetryConfig;
  readonly matcher: RetryMatcher;
}

export function createRetryPolicy(policy: TrafficPolicy | undefined, deps: Pick<PolicyDeps, 'clock' | 'metrics'>, options: RetryOptions = {}): PolicyRuntime | undefined {
  if (!policy) return undefined;
  const active = (c: RetryConfig | undefined) => c !== undefined && (c.attempts > 0 || c.perTryTimeoutMs !== undefined);
  if (!active(policy.retries) && !policy.routes.some((r) => active(r.retries))) return undefined;

  const { clock } = deps;
  const random = options.random ?? Math.random;
  const service = policy.service;
  const retriesCounter = deps.metrics.retries.labels(service);
  const exhaustedCounter = retryMetrics(deps.metrics.registry).budgetExhausted.labels(service);
  const budget = new RetryBudget(clock, options.budget);
  const deadlines = new DeadlineQueues(clock);
  const compiled = new Map<RetryConfig, CompiledRetry>();
  const compile = (config: RetryConfig) => {
    let c = compiled.get(config);
    if (!c) compiled.set(config, c = { config, matcher: compileConditions(config.on) });
    return c;
  };
  const serviceRetry = compile(policy.retries);
  for (const r of policy.routes) if (r.retries) compile(r.retries);

  const stage: Stage = (next: Handler): Handler => async (req: IncomingMessage, ctx: RequestContext, attempt: AttemptOptions) => {
    const { config, matcher } = ctx.route?.retries ? compile(ctx.route.retries) : serviceRetry;
    const perTry = config.perTryTimeoutMs;
    const once = perTry === undefined
      ? () => next(req, ctx, attempt)
      : () => withDeadline(deadlines.get(perTry), attempt.signal, (signal) => next(req, ctx, { signal }), () => new UpstreamTimeoutError('per-try', perTry));

    let allowed = config.attempts;
    if (allowed > 0 && ctx.replayBody === undefined) {
      const kind = bodyKind(req);
      // A body we cannot keep whole streams straight through, once: no retries for it.
      if (kind === 'stream') allowed = 0;
      else if (kind === 'small') ctx.replayBody = await readBody(req, attempt.signal);
    }
    budget.recordRequest();

    const stopped = () => attempt.signal?.aborted === true || ctx.clientGone.aborted;
    const mayRetry = (n: number): boolean => {
      if (n > allowed || stopped()) return false;
      if (!budget.tryRetry()) {
        exhaustedCounter.inc();
        return false;
      }
      return true;
    };
    for (let n = 1; ; n++) {
      let res: IncomingMessage;
      try {
        res = await once();
      } catch (err) {
        if (!matcher.error(err) || !mayRetry(n)) throw err;
        retriesCounter.inc();
        await sleep(clock, backoffMs(n, random), [attempt.signal, ctx.clientGone]);
        continue;
      }
      if (!matcher.status(res.statusCode ?? 0) || !mayRetry(n)) return res;
      // Drain the discarded response so its keep-alive socket goes back to the pool.
      res.resume();
      retriesCounter.inc();
      await sleep(clock, backoffMs(n, random), [attempt.signal, ctx.clientGone]);
    }
  };

  return { stage };
}
