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
 * Run `fn` with a signal that aborts with `onTimeout()` when the queue's deadline passes (or
 * with the parent's reason when `parent` aborts). No timer promise is raced against `fn`:
 * every stage below a deadline and the forwarder reject with their signal's reason as soon as
 * it aborts (test/timeout-contract.test.ts holds each of them to it), and a race would cost a
 * promise, three closures and a microtask turn per request.
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
  const deadline = deadlines.add(() => controller.abort(onTimeout()));
  return fn(controller).then(
    (v) => {
      deadlines.cancel(deadline);
      parent?.detach(controller);
      return v;
    },
    (e: unknown) => {
      deadlines.cancel(deadline);
      parent?.detach(controller);
      throw controller.aborted && controller.reason instanceof Error ? controller.reason : e;
    },
  );
}
