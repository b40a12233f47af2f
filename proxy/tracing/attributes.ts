// Span names and attributes per the OpenTelemetry HTTP semantic conventions (stable set).
import type { IncomingMessage } from 'node:http';
import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_REQUEST_METHOD_ORIGINAL, ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT, ATTR_NETWORK_PROTOCOL_VERSION, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT,
  ATTR_URL_FULL, ATTR_URL_PATH, ATTR_URL_QUERY, ATTR_URL_SCHEME, ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { RequestContext } from '../pipeline';

/** Our own attributes, namespaced as the conventions ask. */
export const ATTR_PILLION_REASON = 'pillion.reason';
export const ATTR_PILLION_REQUEST_ID = 'pillion.request_id';
export const ATTR_PILLION_ATTEMPT = 'pillion.attempt';
export const ATTR_PILLION_ATTEMPT_COUNT = 'pillion.attempt_count';
export const ATTR_PILLION_SERVICE = 'pillion.service';
/** Not in the stable set, but what Jaeger and Zipkin use to draw the call graph. */
export const ATTR_PEER_SERVICE = 'peer.service';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY']);

/** The span name is the method alone: we know no low-cardinality route template. */
export function spanName(method: string): string {
  return KNOWN_METHODS.has(method) ? method : 'HTTP';
}

function methodAttributes(method: string, into: Attributes): void {
  if (KNOWN_METHODS.has(method)) into[ATTR_HTTP_REQUEST_METHOD] = method;
  else {
    into[ATTR_HTTP_REQUEST_METHOD] = '_OTHER';
    into[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = method;
  }
}

/** `host[:port]` of a Host header or `host:port` of an upstream, IPv6 brackets removed. */
export function splitHostPort(value: string | undefined): { host: string; port: number | undefined } | undefined {
  if (!value) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(value);
  if (!m) return undefined;
  return { host: (m[1] ?? m[2])!, port: m[3] !== undefined ? Number(m[3]) : undefined };
}

function pathAttributes(path: string, into: Attributes): void {
  const q = path.indexOf('?');
  into[ATTR_URL_PATH] = q < 0 ? path : path.slice(0, q);
  if (q >= 0) into[ATTR_URL_QUERY] = path.slice(q + 1);
}

export function serverAttributes(req: IncomingMessage, ctx: RequestContext): Attributes {
  const a: Attributes = { [ATTR_URL_SCHEME]: 'http', [ATTR_PILLION_REQUEST_ID]: ctx.requestId };
  methodAttributes(ctx.method, a);
  pathAttributes(ctx.path, a);
  const host = splitHostPort(req.headers.host);
  if (host) {
    a[ATTR_SERVER_ADDRESS] = host.host;
    a[ATTR_SERVER_PORT] = host.port ?? 80;
  }
  if (ctx.clientIp) a[ATTR_CLIENT_ADDRESS] = ctx.clientIp;
  const socket = req.socket;
  if (socket?.remoteAddress) a[ATTR_NETWORK_PEER_ADDRESS] = socket.remoteAddress;
  if (socket?.remotePort) a[ATTR_NETWORK_PEER_PORT] = socket.remotePort;
  if (req.httpVersion) a[ATTR_NETWORK_PROTOCOL_VERSION] = req.httpVersion;
  const ua = req.headers['user-agent'];
  if (ua) a[ATTR_USER_AGENT_ORIGINAL] = ua;
  return a;
}

/** The logical outbound call (parent of the attempts). */
export function outboundAttributes(req: IncomingMessage, ctx: RequestContext): Attributes {
  const a: Attributes = { [ATTR_PEER_SERVICE]: ctx.service, [ATTR_PILLION_SERVICE]: ctx.service, [ATTR_PILLION_REQUEST_ID]: ctx.requestId };
  methodAttributes(ctx.method, a);
  pathAttributes(ctx.path, a);
  const ua = req.headers['user-agent'];
  if (ua) a[ATTR_USER_AGENT_ORIGINAL] = ua;
  return a;
}

/** One attempt: `attempt` counts from 1; resend_count is only set on resends, as the conventions say. */
export function clientAttributes(req: IncomingMessage, ctx: RequestContext, attempt: number): Attributes {
  const a: Attributes = { [ATTR_PEER_SERVICE]: ctx.service, [ATTR_PILLION_ATTEMPT]: attempt };
  methodAttributes(ctx.method, a);
  const hostHeader = req.headers.host ?? ctx.service;
  const host = splitHostPort(hostHeader);
  if (host) {
    a[ATTR_SERVER_ADDRESS] = host.host;
    a[ATTR_SERVER_PORT] = host.port ?? 80;
  }
  a[ATTR_URL_FULL] = `http://${hostHeader}${ctx.path}`;
  if (attempt > 1) a[ATTR_HTTP_REQUEST_RESEND_COUNT] = attempt - 1;
  const ua = req.headers['user-agent'];
  if (ua) a[ATTR_USER_AGENT_ORIGINAL] = ua;
  return a;
}
