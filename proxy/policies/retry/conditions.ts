// Which outcomes of an attempt are worth another try (`retries.on`), compiled once per config.
import type { RetryCondition } from '../../config';
import { UpstreamTimeoutError, UpstreamUnreachableError } from '../../errors';

export interface RetryMatcher {
  status(code: number): boolean;
  error(err: unknown): boolean;
}

export function compileConditions(on: readonly RetryCondition[]): RetryMatcher {
  const statuses = new Set<number>();
  let any5xx = false, gateway = false, connectFailure = false, reset = false;
  for (const c of on) {
    if (c === '5xx') any5xx = true;
    else if (c === 'gateway-error') gateway = true;
    else if (c === 'connect-failure') connectFailure = true;
    else if (c === 'reset') reset = true;
    else statuses.add(c);
  }
  const status = (code: number) =>
    statuses.has(code) || (any5xx && code >= 500 && code <= 599) || (gateway && code >= 502 && code <= 504);
  return {
    status,
    error(err) {
      // An attempt that got no response is retried for its own kind, or for the status its
      // local reply would carry (503 unreachable, 504 per-try timeout), as with Envoy's 5xx
      // and gateway-error. Local replies of inner stages (circuit-open, overflow) never are.
      if (err instanceof UpstreamUnreachableError) {
        return (err.kind === 'connect-failure' ? connectFailure : reset) || status(err.status);
      }
      if (err instanceof UpstreamTimeoutError) return err.scope === 'per-try' && status(err.status);
      return false;
    },
  };
}
