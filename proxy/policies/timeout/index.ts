// The overall request timeout (`timeout`, per route or per service): one deadline over
// every attempt and backoff, up to the upstream's response headers.
import { DEFAULT_TIMEOUT_MS, TrafficPolicy } from '../../config';
import { UpstreamTimeoutError } from '../../errors';
import { CancelSignal, Handler, Stage } from '../../pipeline';
import type { PolicyDeps, PolicyRuntime } from '../../listeners/policy-runtime';

export function createTimeoutPolicy(policy: TrafficPolicy | undefined, deps: Pick<PolicyDeps, 'clock'>): PolicyRuntime {
  const serviceTimeoutMs = policy?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const stage: Stage = (next: Handler): Handler => (req, ctx, attempt) => {
    const ms = ctx.route?.timeoutMs ?? serviceTimeoutMs;
    return withDeadline(deps.clock, ms, attempt.signal, (signal) => next(req, ctx, { ...attempt, signal }), () => new UpstreamTimeoutError('overall', ms));
  };
  return { stage };
}

/**
 * Run `fn` with a signal that aborts after `ms` (or when `parent` aborts). On the deadline the
 * promise rejects with `onTimeout()` at once, even if `fn` ignores its signal.
 */
export function withDeadline<T>(
  clock: PolicyDeps['clock'], ms: number, parent: CancelSignal | undefined,
  fn: (signal: CancelSignal) => Promise<T>, onTimeout: () => Error,
): Promise<T> {
  const controller = new CancelSignal();
  const onParentAbort = () => controller.abort(parent!.reason);
  if (parent) {
    if (parent.aborted) controller.abort(parent.reason);
    else parent.addEventListener('abort', onParentAbort, { once: true });
  }
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => {
      const err = onTimeout();
      controller.abort(err);
      reject(err);
    }, ms);
    const done = () => {
      clock.clearTimeout(timer);
      parent?.removeEventListener('abort', onParentAbort);
    };
    fn(controller).then(
      (v) => { done(); resolve(v); },
      (e) => { done(); reject(controller.aborted && controller.reason instanceof Error ? controller.reason : e); },
    );
  });
}
