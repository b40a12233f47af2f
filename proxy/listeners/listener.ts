// The inbound and outbound HTTP listeners: parse and check at the edge, build the request
// context, run the service's stack, then write the upstream response or a local reply.
import http, { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type httpProxy from 'http-proxy';
import type { Endpoint, RouteConfig, TrafficPolicy } from '../config';
import { BadRequestError, DrainingError, NoRouteError, ProxyError, toProxyError } from '../errors';
import { CancelSignal, Direction, RequestContext } from '../pipeline';
import { prepareRequestHeaders, responseHeaders } from '../forward/headers';
import { abortAttempt, ClientGoneError, forwardUpgrade } from '../forward/forwarder';
import { ResponseRelay } from '../forward/relay';
import type { ServiceRuntime, ServiceTable } from '../runtime/service-table';
import type { ProxyMetrics } from '../observability/metrics';
import { AccessLog, traceIdForLog } from '../observability/access-log';
import type { Logger } from '../runtime/logger';
import { originalDestination, transparentSupport } from '../transparent';
import { rawLocalReply, sendLocalReply } from './local-reply';
import { checkAmbiguity, matchRoute, outboundTarget, RequestTarget } from './request-target';

export interface ListenerState {
  draining: boolean;
  inFlight: number;
  /** Called whenever inFlight drops to zero while draining. */
  onIdle: (() => void) | undefined;
}

export interface ListenerDeps {
  readonly direction: Direction;
  readonly table: ServiceTable;
  readonly proxy: httpProxy;
  readonly metrics: ProxyMetrics;
  readonly accessLog: AccessLog;
  readonly logger: Logger;
  readonly state: ListenerState;
  readonly selfService: string;
  /** inbound: the app (--app); unused outbound. */
  readonly app: Endpoint | undefined;
  readonly headerTimeoutMs: number;
  /** Our own listener ports, never a valid upstream (it would loop). */
  readonly ownPorts: () => readonly number[];
}

const ORIGINAL_DST = Symbol('pillion.originalDst');
type TrackedSocket = Socket & { [ORIGINAL_DST]?: Endpoint | null };

export function createListener(deps: ListenerDeps): http.Server {
  const server = http.createServer({
    maxHeaderSize: 16 * 1024,          // larger header blocks: 431
    headersTimeout: deps.headerTimeoutMs, // slow header senders: 408
    requestTimeout: 0,                 // bodies may stream for as long as they need
    connectionsCheckingInterval: Math.min(1000, deps.headerTimeoutMs),
    requireHostHeader: false,          // checked here, with our own reply
    joinDuplicateHeaders: false,
  });
  const transparent = transparentSupport().available;
  const { direction, state, metrics } = deps;

  const originalDst = (socket: Socket): Endpoint | undefined => {
    if (!transparent) return undefined;
    const s = socket as TrackedSocket;
    if (s[ORIGINAL_DST] === undefined) s[ORIGINAL_DST] = originalDestination(socket) ?? null;
    return s[ORIGINAL_DST] ?? undefined;
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const startMs = performance.now();
    state.inFlight++;
    const clientIp = normalizeIp(req.socket.remoteAddress);
    const method = req.method ?? 'GET';
    let service = direction === 'inbound' ? deps.selfService : '-';
    let requestId = '';
    let runtime: ServiceRuntime | undefined;
    let localReason = '';
    /** A local reply's body bytes; a relayed response counts its own. */
    let bytesSent = 0;
    let ctx: ListenerContext | undefined;
    let pathForLog = req.url ?? '';
    let upstreamRes: IncomingMessage | undefined;
    let relay: ResponseRelay | undefined;

    // The one close handler: cleanup, metrics, log. `on`, not `once`: 'close' is emitted once,
    // and `once` would cost a wrapper per request.
    res.on('close', () => {
      if (upstreamRes && !upstreamRes.complete) upstreamRes.destroy();
      if (!res.writableFinished) {
        abortAttempt(req);
        ctx?.markClientGone();
        if (!localReason) localReason = res.headersSent ? 'upstream-reset' : 'client-closed';
      }
      if (runtime) runtime.inFlight--;
      const status = res.headersSent ? res.statusCode : 499;
      const seconds = (performance.now() - startMs) / 1000;
      metrics.recordRequest(direction, service, status, localReason, seconds);
      deps.accessLog.write({
        direction, service, method,
        // Query strings often carry credentials: the log keeps the path only.
        path: stripQuery(pathForLog), status, reason: localReason,
        duration_ms: seconds * 1000, bytes_sent: relay?.bytes ?? bytesSent, // rounded to µs by the log
        upstream: ctx?.upstream ?? '', attempt_count: ctx?.attemptCount ?? 0,
        // Without tracing stages, the W3C header is all there is.
        trace_id: ctx?.traceId || traceIdForLog(req.headers.traceparent),
        request_id: requestId,
      });
      ctx?.responseClosed?.();
      state.inFlight--;
      if (state.inFlight === 0 && state.draining) state.onIdle?.();
    });

    const fail = (err: unknown) => {
      const e = toProxyError(err);
      if (e instanceof ClientGoneError) return;
      if (!localReason) localReason = e.reason;
      const sent = sendLocalReply(res, e, requestId, state.draining);
      if (sent < 0) res.destroy();
      else bytesSent = sent;
      if (e.reason === 'internal-error') deps.logger.error('request failed', { error: String((err as Error)?.stack ?? err) });
    };

    try {
      checkAmbiguity(req);
      let target: RequestTarget | undefined;
      if (direction === 'outbound') {
        target = outboundTarget(req);
        service = target.service;
      }
      pathForLog = req.url ?? '';
      requestId = prepareRequestHeaders(req.headers, clientIp);
      if (state.draining) throw new DrainingError();

      runtime = direction === 'inbound' ? deps.table.current.inbound : deps.table.outboundFor(service);
      runtime.inFlight++;
      const path = req.url!;
      // A policy's endpoints make the fallback moot (and its loop check with it): not worked out per request.
      const fallback = runtime.usesEndpoints ? undefined : fallbackTarget(deps, target, originalDst(req.socket));
      ctx = new ListenerContext(
        direction, service, requestId, startMs, clientIp, method, path, runtime.policy,
        matchRoute(runtime.policy, method, path), fallback, res,
      );
      runtime.stack.handler(req, ctx, {}).then((upstream) => {
        if (res.destroyed) {
          upstream.destroy();
          return;
        }
        upstreamRes = upstream;
        res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, responseHeaders(upstream.headers, state.draining));
        relay = new ResponseRelay(upstream, res);
        // A reset mid-body must abort the client's response, not leave it hanging: the
        // upstream response closes without having completed (aborted, or an error).
        upstream.on('close', () => { if (!upstream.complete) res.destroy(); });
      }, fail);
    } catch (err) {
      // Drain what the client is still sending of a refused request, then reply.
      if (!(err instanceof ProxyError) || err.reason !== 'bad-request') req.resume();
      else res.shouldKeepAlive = false;
      fail(err);
    }
  });

  // Parse errors never reach 'request': answer them here with the same reply shape.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    let e: ProxyError;
    if (err.code === 'HPE_HEADER_OVERFLOW') e = new ProxyError('header-too-large', 431, 'request headers exceed 16 KiB');
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') e = new ProxyError('request-timeout', 408, 'request headers not received in time');
    else if (err.code === 'ECONNRESET' || err.code === 'EPIPE') { socket.destroy(); return; }
    else e = new BadRequestError(`malformed request: ${err.code ?? 'parse error'}`);
    metrics.clientErrors.inc({ direction, reason: e.reason });
    if (socket.writable) socket.end(rawLocalReply(e));
    else socket.destroy();
  });

  server.on('connect', (_req: IncomingMessage, socket: Duplex) => {
    metrics.clientErrors.inc({ direction, reason: 'bad-request' });
    socket.end(rawLocalReply(new BadRequestError('CONNECT is not supported')));
  });

  // WebSocket and other upgrades: routed like requests, then piped both ways.
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    try {
      if (state.draining) throw new DrainingError();
      checkAmbiguity(req);
      const target = direction === 'outbound' ? outboundTarget(req) : undefined;
      const runtime = direction === 'inbound' ? deps.table.current.inbound : deps.table.outboundFor(target!.service);
      const dest = runtime.usesEndpoints ? runtime.policy!.endpoints[0] : fallbackTarget(deps, target, originalDst(socket));
      if (!dest) throw new NoRouteError(target?.service ?? deps.selfService);
      prepareUpgradeHeaders(req, normalizeIp(socket.remoteAddress));
      forwardUpgrade(deps.proxy, req, socket, head, dest, () => {
        if (socket.writable) socket.end(rawLocalReply(new ProxyError('upstream-unreachable', 503, 'upgrade failed upstream')));
        else socket.destroy();
      });
    } catch (err) {
      socket.end(rawLocalReply(toProxyError(err)));
    }
  });

  return server;
}

/** The request context; its clientGone signal is only built if a stage asks for it. */
class ListenerContext implements RequestContext {
  attemptCount = 0;
  upstream: string | undefined = undefined;
  traceId: string | undefined = undefined;
  responseClosed: (() => void) | undefined = undefined;
  replayBody: Buffer | undefined = undefined;
  private signal: CancelSignal | undefined;
  private gone = false;
  private slotMap: Map<symbol, unknown> | undefined;

  constructor(
    readonly direction: Direction, readonly service: string, readonly requestId: string, readonly startMs: number,
    readonly clientIp: string, readonly method: string, readonly path: string,
    readonly policy: TrafficPolicy | undefined, readonly route: RouteConfig | undefined,
    readonly fallbackTarget: Endpoint | undefined, readonly res: ServerResponse,
  ) {}

  get clientGone(): CancelSignal {
    if (!this.signal) {
      this.signal = new CancelSignal();
      if (this.gone) this.signal.abort(new ClientGoneError());
    }
    return this.signal;
  }

  get slots(): Map<symbol, unknown> {
    return (this.slotMap ??= new Map());
  }

  peekSlot(key: symbol): unknown {
    return this.slotMap?.get(key);
  }

  markClientGone(): void {
    this.gone = true;
    this.signal?.abort(new ClientGoneError());
  }
}

function fallbackTarget(deps: ListenerDeps, target: RequestTarget | undefined, original: Endpoint | undefined): Endpoint | undefined {
  let dest: Endpoint | undefined;
  if (deps.direction === 'inbound') {
    dest = original ? { host: '127.0.0.1', port: original.port } : deps.app;
  } else if (original) {
    dest = original;
  } else if (target) {
    dest = { host: target.hostname, port: target.port ?? 80 };
  }
  if (dest && isLoopback(dest.host) && deps.ownPorts().includes(dest.port)) {
    throw new BadRequestError('request would loop back into the proxy');
  }
  return dest;
}

function prepareUpgradeHeaders(req: IncomingMessage, clientIp: string): void {
  const xff = req.headers['x-forwarded-for'];
  req.headers['x-forwarded-for'] = xff ? `${xff}, ${clientIp}` : clientIp;
  if (!req.headers['x-forwarded-proto']) req.headers['x-forwarded-proto'] = 'http';
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}

function normalizeIp(addr: string | undefined): string {
  if (!addr) return '';
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr;
}

function stripQuery(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}
