// The terminal handler: one upstream attempt through http-proxy, resolving with the
// upstream response (not yet written, so policies can look at it) or a typed error.
import http, { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Endpoint } from '../config';
import { NoRouteError, ProxyError, UpstreamUnreachableError } from '../errors';
import type { AttemptOptions, CancelSignal, Handler, RequestContext } from '../pipeline';
import { announcedBody } from './headers';
import { UpstreamAgent } from './upstream-agent';

const ATTEMPT = Symbol('pillion.attempt');

/**
 * One upstream attempt. Once settled it drops every reference it holds: the upstream
 * keep-alive socket's parser keeps the last ClientRequest (and through http-proxy's error
 * listener, this object) until the socket's next request, so anything still reachable from
 * here would outlive the request and be promoted to the old generation (measured: repeated
 * mark-compacts and a third of the throughput, before this).
 */
class Attempt {
  proxyReq: http.ClientRequest | undefined = undefined;
  settled = false;
  private resolveFn: ((res: IncomingMessage) => void) | undefined;
  private rejectFn: ((err: unknown) => void) | undefined;
  private signal: CancelSignal | undefined;

  /** Only while request trailers may still come (see forwardTrailers). */
  private req: IncomingMessage | undefined;

  constructor(
    resolve: (res: IncomingMessage) => void, reject: (err: unknown) => void, signal: CancelSignal | undefined,
    private readonly target: Endpoint,
  ) {
    this.resolveFn = resolve;
    this.rejectFn = reject;
    if (signal) {
      this.signal = signal;
      signal.attach(this);
    }
  }

  resolve(res: IncomingMessage): void {
    const fn = this.resolveFn;
    this.release();
    fn?.(res);
  }

  reject(err: unknown): void {
    const fn = this.rejectFn;
    this.release();
    fn?.(err);
  }

  /** The per-attempt deadline (or an outer one) fired: stop the upstream request. */
  abort(reason: unknown): void {
    if (this.settled) return;
    this.proxyReq?.destroy();
    this.reject(reason instanceof Error ? reason : new ClientGoneError());
  }

  /** http-proxy's callback: a method bound to this object alone, for the reason above. */
  readonly onProxyError = (err: NodeJS.ErrnoException): void => {
    if (!this.settled) this.reject(classifyUpstreamError(err, this.target));
  };

  /** Request trailers: forwarded before http-proxy's pipe ends the upstream request. */
  watchTrailers(req: IncomingMessage): void {
    this.req = req;
    // Made here, not as a field: only requests that announce trailers pay for the closure.
    req.prependListener('end', () => {
      const trailers = this.req?.trailers;
      if (this.proxyReq && trailers && Object.keys(trailers).length > 0) this.proxyReq.addTrailers(trailers);
      this.req = undefined;
    });
  }

  private release(): void {
    this.settled = true;
    this.req = undefined;
    this.signal?.detach(this);
    this.signal = undefined;
    this.resolveFn = undefined;
    this.rejectFn = undefined;
    this.proxyReq = undefined;
  }
}

type RequestWithAttempt = IncomingMessage & { [ATTEMPT]?: Attempt };

export class ClientGoneError extends ProxyError {
  constructor() { super('internal-error', 499, 'client closed the request'); }
}

/**
 * One http-proxy server for the whole process. We handle the response ourselves
 * (selfHandleResponse) and errors per call (FACTS.md: an unhandled `error` event crashes).
 */
export function createProxyServer(): httpProxy {
  const proxy = httpProxy.createProxyServer({ xfwd: false, selfHandleResponse: true, ws: true });
  // http-proxy sets content-length: 0 on DELETE/OPTIONS without one, which drops a
  // chunked body (FACTS.md); Node frames those bodies correctly on its own.
  const passes = (proxy as unknown as { webPasses: Array<{ name: string }> }).webPasses;
  const i = passes.findIndex((p) => p.name === 'deleteLength');
  if (i >= 0) passes.splice(i, 1);

  proxy.on('proxyReq', (proxyReq: http.ClientRequest, req: IncomingMessage) => {
    const attempt = (req as RequestWithAttempt)[ATTEMPT];
    if (attempt && !attempt.settled) attempt.proxyReq = proxyReq;
  });
  proxy.on('proxyRes', (proxyRes: IncomingMessage, req: IncomingMessage) => {
    const attempt = (req as RequestWithAttempt)[ATTEMPT];
    if (!attempt || attempt.settled) {
      proxyRes.destroy();
      return;
    }
    attempt.resolve(proxyRes);
  });
  // Client aborts surface here rather than through the callback (FACTS.md, #813).
  proxy.on('econnreset', (_err: Error, req: IncomingMessage) => {
    const attempt = (req as RequestWithAttempt)[ATTEMPT];
    if (attempt && !attempt.settled) attempt.reject(new ClientGoneError());
  });
  proxy.on('error', () => { /* every call passes its own callback; this is a safety net */ });
  return proxy;
}

/**
 * How long a pooled upstream socket may sit idle: below Node's default 5 s server keep-alive,
 * so a reused socket is not one the upstream is about to close (nodejs/node#47130).
 */
export const UPSTREAM_IDLE_MS = 4000;

export function createAgent(idleMs = UPSTREAM_IDLE_MS): http.Agent {
  return new UpstreamAgent(upstreamAgentOptions(idleMs));
}

export function upstreamAgentOptions(idleMs = UPSTREAM_IDLE_MS): http.AgentOptions {
  // The agent's `timeout` closes a socket that idles in the pool (and only there). Measured
  // against stamping pooled sockets and sweeping the pool instead: no difference side by side.
  return { keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 256, timeout: idleMs, scheduling: 'lifo' };
}

/** How the forwarder picks where an attempt goes. */
export interface ForwarderTargets {
  /** The policy's endpoints; empty means use ctx.fallbackTarget. */
  readonly endpoints: readonly Endpoint[];
}

/**
 * http-proxy sends the request body with `(options.buffer || req).pipe(proxyReq)`. A request
 * without one (neither content-length nor transfer-encoding, RFC 9112 6.3: most GETs) has
 * nothing to send, and stream.pipe costs seven listeners added and removed again per call
 * (the response side measured 7% of a forwarded request's throughput). This stand-in's pipe
 * just ends the upstream request. The client's request is then never read; Node's server
 * discards what is left of it (nothing) when the response finishes.
 */
const NO_BODY = { pipe: (upstreamReq: http.ClientRequest) => upstreamReq.end() } as unknown as httpProxy.ServerOptions['buffer'];

/** Where one attempt goes, with what http-proxy is told for it. */
class Destination {
  /** host:port as the access log and traces show it. */
  readonly label: string;
  private withBody: httpProxy.ServerOptions | undefined;
  private withoutBody: httpProxy.ServerOptions | undefined;

  constructor(readonly endpoint: Endpoint, private readonly agent: http.Agent) {
    const { host, port } = endpoint;
    this.label = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  }

  /**
   * http-proxy's per-call options for a request with or without a body. It only reads them, so
   * each is made on first use and serves every later attempt (a fallback target's destination
   * lives for one request, and makes only the one it needs).
   */
  options(body: boolean): httpProxy.ServerOptions {
    return body ? (this.withBody ??= this.make(undefined)) : (this.withoutBody ??= this.make(NO_BODY));
  }

  private make(buffer: httpProxy.ServerOptions['buffer']): httpProxy.ServerOptions {
    const { host, port } = this.endpoint;
    return { target: { host, port, protocol: 'http:' } as unknown as string, agent: this.agent, buffer };
  }
}

export function createForwarder(proxy: httpProxy, agent: http.Agent, targets: ForwarderTargets): Handler {
  // A policy's endpoints are fixed for this forwarder's life (a new config builds a new one):
  // their labels and options are made once here, not per request.
  const fixed = targets.endpoints.map((e) => new Destination(e, agent));
  let next = 0;
  const pick = (ctx: RequestContext): Destination => {
    if (fixed.length > 0) {
      next = (next + 1) % fixed.length;
      return fixed[next]!;
    }
    if (ctx.fallbackTarget) return new Destination(ctx.fallbackTarget, agent);
    throw new NoRouteError(ctx.service);
  };

  return (req: IncomingMessage, ctx: RequestContext, opts: AttemptOptions): Promise<IncomingMessage> => {
    const dest = pick(ctx);
    ctx.attemptCount++;
    ctx.upstream = dest.label;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const signal = opts.signal;
      if (signal?.aborted) {
        const reason = signal.reason;
        return reject(reason instanceof Error ? reason : new ClientGoneError());
      }
      const attempt = new Attempt(resolve, reject, signal, dest.endpoint);
      (req as RequestWithAttempt)[ATTEMPT] = attempt;
      if (ctx.replayBody === undefined && req.headers.trailer !== undefined) attempt.watchTrailers(req);
      const options = ctx.replayBody !== undefined ? { ...dest.options(true), buffer: Readable.from([ctx.replayBody]) }
        : dest.options(announcedBody(req.headers) !== 0);
      proxy.web(req, ctx.res as ServerResponse, options, attempt.onProxyError);
    });
  };
}

export function classifyUpstreamError(err: NodeJS.ErrnoException, target: Endpoint): ProxyError {
  switch (err.code) {
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new NoRouteError(target.host);
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
    case 'ETIMEDOUT':
      return new UpstreamUnreachableError('connect-failure', `${err.code} ${target.host}:${target.port}`);
    default:
      return new UpstreamUnreachableError('reset', `${err.code ?? err.message} from ${target.host}:${target.port}`);
  }
}

/** The client went away: stop the attempt in flight, if any (FACTS.md: http-proxy would not). */
export function abortAttempt(req: IncomingMessage): void {
  const attempt = (req as RequestWithAttempt)[ATTEMPT];
  if (attempt && !attempt.settled) attempt.abort(new ClientGoneError());
}

/** WebSocket and other upgrades: piped through as-is, no policies beyond routing. */
export function forwardUpgrade(proxy: httpProxy, req: IncomingMessage, socket: Socket, head: Buffer, target: Endpoint, onError: (err: Error) => void): void {
  proxy.ws(req, socket, head, { target: { host: target.host, port: target.port, protocol: 'http:' } as unknown as string }, onError);
}
