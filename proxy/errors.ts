// Every way the proxy answers instead of the upstream, as typed errors with stable codes.
// They are turned into local replies in one place: ./local-reply.ts.

export type LocalReason =
  | 'rate-limited' | 'circuit-open' | 'overflow' | 'upstream-unreachable' | 'upstream-timeout'
  | 'no-route' | 'draining' | 'bad-request' | 'upstream-reset' | 'request-timeout'
  | 'header-too-large' | 'internal-error';

export class ProxyError extends Error {
  constructor(
    readonly reason: LocalReason,
    readonly status: number,
    message: string,
    /** Extra response headers (rate-limit headers, retry-after). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'ProxyError';
  }
}

export class RateLimitedError extends ProxyError {
  constructor(headers: Record<string, string>) { super('rate-limited', 429, 'rate limit exceeded', headers); }
}
export class CircuitOpenError extends ProxyError {
  constructor(service: string) { super('circuit-open', 503, `circuit breaker for ${service} is open`); }
}
export class OverflowError extends ProxyError {
  constructor(service: string, max: number) { super('overflow', 503, `${service} has ${max} requests in flight (maxConcurrent)`); }
}
/** Connect refused, or reset before any response byte. `cause` says which, for retries. */
export class UpstreamUnreachableError extends ProxyError {
  constructor(readonly kind: 'connect-failure' | 'reset', detail: string) {
    super('upstream-unreachable', 503, `upstream unreachable: ${detail}`);
  }
}
export class UpstreamTimeoutError extends ProxyError {
  constructor(readonly scope: 'overall' | 'per-try', ms: number) {
    super('upstream-timeout', 504, `upstream did not answer within ${ms}ms (${scope} timeout)`);
  }
}
export class NoRouteError extends ProxyError {
  constructor(host: string) { super('no-route', 404, `no route to service ${JSON.stringify(host)}`); }
}
export class DrainingError extends ProxyError {
  constructor() { super('draining', 503, 'the proxy is shutting down'); }
}
export class BadRequestError extends ProxyError {
  constructor(detail: string) { super('bad-request', 400, detail); }
}

/** Wrap anything thrown that is not ours, so the request still gets one clear answer. */
export function toProxyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  return new ProxyError('internal-error', 500, 'internal proxy error');
}
