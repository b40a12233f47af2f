// The order of policies on each listener, decided here and nowhere else. Stacks are built
// when a config version is applied; the per-request path only runs them.
import type { TrafficPolicy } from '../config';
import { compose, Handler } from '../pipeline';
import type { PolicyDeps, PolicyRuntime } from './policy-runtime';
import { createTimeoutPolicy } from '../policies/timeout';
import { createRetryPolicy } from '../policies/retry';
import { createCircuitBreakerPolicy } from '../policies/circuit-breaker';
import { createRateLimitPolicy } from '../policies/rate-limit';

export interface BuiltStack {
  readonly handler: Handler;
  /** This service's policy state for GET /clusters. */
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

function assemble(runtimes: readonly (PolicyRuntime | undefined)[], terminal: Handler): BuiltStack {
  const used = runtimes.filter((r): r is PolicyRuntime => r !== undefined);
  return {
    handler: compose(used.map((r) => r.stage), terminal),
    describe: () => Object.assign({}, ...used.map((r) => r.describe?.() ?? {})),
    close: async () => { await Promise.all(used.map((r) => r.close?.())); },
  };
}

/** Calls from the app to `policy.service` (or to a service without a policy). */
export function buildOutboundStack(policy: TrafficPolicy | undefined, deps: PolicyDeps, forward: Handler): BuiltStack {
  return assemble([
    // Tracing: one span over the whole call, so replies no attempt saw (circuit-open) are traced.
    deps.tracing?.outbound(),
    // Overall deadline: bounds all attempts and backoffs together, then 504 upstream-timeout.
    createTimeoutPolicy(policy, deps),
    // Retries: each attempt (with its per-try timeout and backoff) goes through the stages below.
    createRetryPolicy(policy, deps),
    // Circuit breaker and maxConcurrent: every attempt is an outcome; open or full answers at once.
    createCircuitBreakerPolicy(policy, deps),
    // Tracing: a CLIENT span per attempt, its context injected into that attempt's headers.
    deps.tracing?.attempt(),
  ], forward);
}

/** Calls from other services to this proxy's app; `policy` is the app's own policy. */
export function buildInboundStack(policy: TrafficPolicy | undefined, deps: PolicyDeps, forward: Handler): BuiltStack {
  return assemble([
    // Tracing: the SERVER span, outermost, so that local replies (429) are traced too.
    deps.tracing?.inbound(),
    // Rate limit first: a refused request costs nothing further.
    createRateLimitPolicy(policy, deps),
  ], forward);
}
