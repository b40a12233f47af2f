// Circuit breaking (`circuitBreaker`, outbound): one opossum breaker per destination service, plus `maxConcurrent`.
import type { IncomingMessage } from 'node:http';
import CircuitBreaker from 'opossum';
import type { TrafficPolicy } from '../../config';
import { CircuitOpenError, OverflowError, ProxyError } from '../../errors';
import type { Stage } from '../../pipeline';
import type { PolicyDeps, PolicyRuntime } from '../../listeners/policy-runtime';

export type BreakerState = 'closed' | 'open' | 'half-open';
const GAUGE_VALUE: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 };

/**
 * An upstream 5xx resolves (it is a response to pass on), but the breaker must see it as a
 * failure: it travels through opossum as this rejection and is unwrapped on the way out.
 * Not an Error, so no stack trace is captured per failed response.
 */
class FailedResponse {
  constructor(readonly res: IncomingMessage) {}
}

/** Failures are what the destination did: 5xx, refused or reset connections, timeouts. */
function isFailure(err: unknown): boolean {
  if (err instanceof FailedResponse) return true;
  if (err instanceof ProxyError) return err.reason === 'upstream-unreachable' || err.reason === 'upstream-timeout' || err.reason === 'upstream-reset';
  // Local replies from inner stages, a client that went away, our own bugs: not the upstream's fault.
  return false;
}

/** Which breaker currently owns a service's gauge series, so closing an old one does not erase a new one's. */
const gaugeOwners = new WeakMap<object, Map<string, object>>();

export function createCircuitBreakerPolicy(policy: TrafficPolicy | undefined, deps: Pick<PolicyDeps, 'metrics'>): PolicyRuntime | undefined {
  const cfg = policy?.circuitBreaker;
  if (!policy || !cfg) return undefined;
  const service = policy.service;
  const gauge = deps.metrics.circuitState.labels(service);
  let owners = gaugeOwners.get(deps.metrics.circuitState);
  if (!owners) gaugeOwners.set(deps.metrics.circuitState, owners = new Map());

  const breaker = new CircuitBreaker((run: () => Promise<IncomingMessage>) => run(), {
    // Timeouts are ours (timeout and retry stages) and reach the breaker as failures.
    timeout: false,
    resetTimeout: cfg.resetTimeoutMs,
    errorThresholdPercentage: cfg.errorThresholdPercentage,
    volumeThreshold: cfg.volumeThreshold,
    rollingCountTimeout: cfg.windowSeconds * 1000,
    // Ten buckets: the window slides in tenths (always divides, as opossum requires).
    rollingCountBuckets: 10,
    // FACTS.md: percentiles sort every latency in the window on each failure; snapshots are unused timers.
    rollingPercentilesEnabled: false,
    enableSnapshots: false,
    errorFilter: (err: unknown) => !isFailure(err),
  });
  let state: BreakerState = 'closed';
  const setState = (s: BreakerState) => {
    state = s;
    gauge.set(GAUGE_VALUE[s]);
  };
  owners.set(service, breaker);
  setState('closed');
  breaker.on('open', () => setState('open'));
  breaker.on('halfOpen', () => setState('half-open'));
  breaker.on('close', () => setState('closed'));

  let inFlight = 0;
  const max = cfg.maxConcurrent;
  // In flight until the response body is done (or discarded), as Envoy counts it.
  const hold = (res: IncomingMessage): IncomingMessage => {
    let released = false;
    const release = () => { if (!released) { released = true; inFlight--; } };
    if (res.destroyed || res.readableEnded) release();
    else res.once('close', release);
    return res;
  };

  const stage: Stage = (next) => (req, ctx, attempt) => {
    // Open: answer at once, the upstream is not contacted. (Half-open with its probe in
    // flight is refused by opossum itself, below.)
    if (state === 'open') return Promise.reject(new CircuitOpenError(service));
    if (inFlight >= max) return Promise.reject(new OverflowError(service, max));
    inFlight++;
    const run = () => next(req, ctx, attempt).then((res) => ((res.statusCode ?? 502) >= 500 ? Promise.reject(new FailedResponse(res)) : res));
    return breaker.fire(run).then(hold, (err: unknown) => {
      if (err instanceof FailedResponse) return hold(err.res);
      inFlight--;
      if ((err as { code?: string })?.code === 'EOPENBREAKER') throw new CircuitOpenError(service);
      throw err;
    });
  };

  return {
    stage,
    describe: () => ({ breaker: state, inFlight }),
    close: () => {
      breaker.shutdown();
      if (owners!.get(service) === breaker) {
        owners!.delete(service);
        deps.metrics.circuitState.remove(service);
      }
    },
  };
}
