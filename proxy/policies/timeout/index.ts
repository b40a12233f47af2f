// The overall request timeout (`timeout`, per route or per service): one deadline over
// every attempt and backoff, up to the upstream's response headers.
import { DEFAULT_TIMEOUT_MS, TrafficPolicy } from '../../config';
import { UpstreamTimeoutError } from '../../errors';
import { CancelSignal, Handler, Stage } from '../../pipeline';
import { DeadlineQueue, DeadlineQueues } from '../../runtime/deadline-queue';
import type { PolicyDeps, PolicyRuntime } from '../../listeners/policy-runtime';

export function createTimeoutPolicy(policy: TrafficPolicy | undefined, deps: Pick<PolicyDeps, 'clock'>): PolicyRuntime {
  const serviceTimeoutMs = policy?.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadlines = new DeadlineQueues(deps.clock);
  const stage: Stage = (next: Handler): Handler => (req, ctx, attempt) => {
    const ms = ctx.route?.timeoutMs ?? serviceTimeoutMs;
    return withDeadline(deadlines.get(ms), attempt.signal, (signal) => next(req, ctx, { signal }), () => new UpstreamTimeoutError('overall', ms));
  };
  return { stage };
}

/**
 * Run `fn` with a signal that aborts when the queue's deadline passes (or when `parent`
 * aborts). On the deadline the promise rejects with `onTimeout()` at once, even if `fn`
 * ignores its signal.
 */
export function withDeadline<T>(
  deadlines: DeadlineQueue, parent: CancelSignal | undefined,
  fn: (signal: CancelSignal) => Promise<T>, onTimeout: () => Error,
): Promise<T> {
  const controller = new CancelSignal();
  if (parent) {
    if (parent.aborted) controller.abort(parent.reason);
    else parent.attach(controller);
  }
  return new Promise<T>((resolve, reject) => {
    const deadline = deadlines.add(() => {
      const err = onTimeout();
      controller.abort(err);
      reject(err);
    });
    fn(controller).then(
      (v) => {
        deadlines.cancel(deadline);
        parent?.detach(controller);
        resolve(v);
      },
      (e) => {
        deadlines.cancel(deadline);
        parent?.detach(controller);
        reject(controller.aborted && controller.reason instanceof Error ? controller.reason : e);
      },
    );
  });
}
