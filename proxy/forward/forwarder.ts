// The terminal handler: one upstream attempt through http-proxy, resolving with the
// upstream response (not yet written, so policies can look at it) or a typed error.
import http, { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Endpoint } from '../config';
import { NoRouteError, ProxyError, UpstreamUnreachableError } from '../errors';
import type { AttemptOptions, Handler, RequestContext } from '../pipeline';

const ATTEMPT = Symbol('pillion.attempt');

interface Attempt {
  resolve(res: IncomingMessage): void;
  reject(err: unknown): void;
  proxyReq: http.ClientRequest | undefined;
  settled: boolean;
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
    if (attempt) attempt.proxyReq = proxyReq;
  });
  proxy.on('proxyRes', (proxyRes: IncomingMessage, req: IncomingMessage) => {
    const attempt = (req as RequestWithAttempt)[ATTEMPT];
    if (!attempt || attempt.settled) {
      proxyRes.destroy();
      return;
    }
    attempt.settled = true;
    attempt.resolve(proxyRes);
  });
  // Client aborts surface here rather than through the callback (FACTS.md, #813).
  proxy.on('econnreset', (_err: Error, req: IncomingMessage) => {
    const attempt = (req as RequestWithAttempt)[ATTEMPT];
    if (attempt && !attempt.settled) {
      attempt.settled = true;
      attempt.reject(new ClientGoneError());
    }
  });
  proxy.on('error', () => { /* every call passes its own callback; this is a safety net */ });
  return proxy;
}

export function createAgent(): http.Agent {
  // Idle sockets are dropped after 4 s, below Node's default 5 s server keep-alive, so a
  // reused socket is not one the upstream is about to close (nodejs/node#47130).
  return new http.Agent({ keepAlive: true, keepAliveMsecs: 1000, maxFreeSockets: 256, timeout: 4000, scheduling: 'lifo' });
}

/** How the forwarder picks where an attempt goes. */
export interface ForwarderTargets {
  /** The policy's endpoints; empty means use ctx.fallbackTarget. */
  readonly endpoints: readonly Endpoint[];
}

export function createForwarder(proxy: httpProxy, agent: http.Agent, targets: ForwarderTargets): Handler {
  let next = 0;
  const pick = (ctx: RequestContext): Endpoint => {
    const { endpoints } = targets;
    if (endpoints.length > 0) {
      next = (next + 1) % endpoints.length;
      return endpoints[next]!;
    }
    if (ctx.fallbackTarget) return ctx.fallbackTarget;
    throw new NoRouteError(ctx.service);
  };

  return (req: IncomingMessage, ctx: RequestContext, opts: AttemptOptions): Promise<IncomingMessage> => {
    const target = pick(ctx);
    ctx.attemptCount++;
    ctx.upstream = target.host.includes(':') ? `[${target.host}]:${target.port}` : `${target.host}:${target.port}`;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const attempt: Attempt = { resolve, reject, proxyReq: undefined, settled: false };
      (req as RequestWithAttempt)[ATTEMPT] = attempt;
      // The client going away is handled by abortAttempt (called by the listener), which
      // is cheaper than an AbortSignal listener per request; only per-attempt deadlines
      // (timeouts) come as a signal.
      const signal = opts.signal;
      if (signal) {
        if (signal.aborted) {
          attempt.settled = true;
          const reason = signal.reason;
          return reject(reason instanceof Error ? reason : new ClientGoneError());
        }
        const onAbort = () => {
          if (attempt.settled) return;
          attempt.settled = true;
          attempt.proxyReq?.destroy();
          const reason = signal.reason;
          reject(reason instanceof Error ? reason : new ClientGoneError());
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const cleanup = () => signal.removeEventListener('abort', onAbort);
        attempt.resolve = (v) => { cleanup(); resolve(v); };
        attempt.reject = (e) => { cleanup(); reject(e); };
      }

      // Request trailers: forwarded before http-proxy's pipe ends the upstream request.
      if (ctx.replayBody === undefined && req.headers.trailer !== undefined) {
        req.prependListener('end', () => {
          const trailers = req.trailers;
          if (attempt.proxyReq && trailers && Object.keys(trailers).length > 0) attempt.proxyReq.addTrailers(trailers);
        });
      }

      proxy.web(req, ctx.res as ServerResponse, {
        target: { host: target.host, port: target.port, protocol: 'http:' } as unknown as string,
        agent,
        buffer: ctx.replayBody !== undefined ? Readable.from([ctx.replayBody]) : undefined,
      }, (err: NodeJS.ErrnoException) => {
        if (attempt.settled) return;
        attempt.settled = true;
        attempt.reject(classifyUpstreamError(err, target));
      });
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
  if (!attempt || attempt.settled) return;
  attempt.settled = true;
  attempt.proxyReq?.destroy();
  attempt.reject(new ClientGoneError());
}

/** WebSocket and other upgrades: piped through as-is, no policies beyond routing. */
export function forwardUpgrade(proxy: httpProxy, req: IncomingMessage, socket: Socket, head: Buffer, target: Endpoint, onError: (err: Error) => void): void {
  proxy.ws(req, socket, head, { target: { host: target.host, port: target.port, protocol: 'http:' } as unknown as string }, onError);
}
