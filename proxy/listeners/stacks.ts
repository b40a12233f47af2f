// The order of policies on each listener, decided here and nowhere else. Stacks are built
// when a config version is applied; the per-request path only runs them.
import type { TrafficPolicy } from '../config';
import { compose, Handler } from '../pipeline';
import type { PolicyDeps, PolicyRuntime } from './policy-runtime';
import { createTimeoutPolicy } from '../policies/timeout';

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
    // Overall deadline: bounds all attempts and backoffs together, then 504 upstream-timeout.
    createTimeoutPolicy(policy, deps),
  ], forward);
}

/** Calls from other services to this proxy's app; `policy` is the app's own policy. */
export function buildInboundStack(policy: TrafficPolicy | undefined, deps: PolicyDeps, forward: Handler): BuiltStack {
  void policy; void deps;
  return assemble([
  ], forward);
}
