// Where a request is going, decided once at the edge: the authority (absolute-form URI or
// Host header), the destination service name, and the origin-form path.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { BadRequestError } from '../errors';
import type { RouteConfig, TrafficPolicy } from '../config';

export interface RequestTarget {
  /** Host name or IP literal, lower-case, without brackets or trailing dot. */
  readonly hostname: string;
  readonly port: number | undefined;
  /** Destination service: the first DNS label of the host (`ratings.default.svc` -> ratings). */
  readonly service: string;
}

const HOSTNAME = /^[a-z0-9_]([a-z0-9_.-]{0,252})$/;

// A pod calls a handful of services, so the same few Host values arrive over and over:
// parsed once each (regexes, isIP, lower-casing: ~250 ns) and then looked up (~20 ns).
// Only valid authorities are kept, and the cache is emptied when full, so a client sending
// endless distinct hosts costs memory up to the bound and nothing more.
const MAX_CACHED_AUTHORITIES = 1024;
const authorities = new Map<string, RequestTarget>();

/** Parse `host[:port]` (Host header or URI authority); throws BadRequestError. */
export function parseAuthority(authority: string): RequestTarget {
  const known = authorities.get(authority);
  if (known) return known;
  const target = Object.freeze(parseAuthorityOnce(authority));
  if (authorities.size >= MAX_CACHED_AUTHORITIES) authorities.clear();
  authorities.set(authority, target);
  return target;
}

function parseAuthorityOnce(authority: string): RequestTarget {
  let host = authority.trim().toLowerCase();
  let port: number | undefined;
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d{1,5}))?$/.exec(host);
  if (v6) {
    host = v6[1]!;
    if (v6[2] !== undefined) port = Number(v6[2]);
    if (isIP(host) !== 6) throw new BadRequestError(`invalid host ${JSON.stringify(authority)}`);
  } else {
    const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(host);
    if (!m) throw new BadRequestError(`invalid host ${JSON.stringify(authority)}`);
    host = m[1]!.replace(/\.$/, '');
    if (m[2] !== undefined) port = Number(m[2]);
    if (!HOSTNAME.test(host) || host.includes('..')) throw new BadRequestError(`invalid host ${JSON.stringify(authority)}`);
  }
  if (port !== undefined && (port < 1 || port > 65535)) throw new BadRequestError(`invalid port in host ${JSON.stringify(authority)}`);
  const service = isIP(host) ? host : host.split('.')[0]!;
  return { hostname: host, port, service };
}

/**
 * For the outbound listener: the target of the request, and normalise absolute-form
 * (`GET http://ratings/x`, sent by HTTP_PROXY clients) to origin-form with a matching Host.
 */
export function outboundTarget(req: IncomingMessage): RequestTarget {
  const url = req.url ?? '';
  if (url.startsWith('/')) {
    const host = req.headers.host;
    if (!host) throw new BadRequestError('missing Host header');
    return parseAuthority(host);
  }
  const m = /^http:\/\/([^/?#]+)([^#]*)$/i.exec(url);
  if (!m) {
    if (/^https:\/\//i.test(url)) throw new BadRequestError('https:// absolute-form is not supported; send plain http to the sidecar');
    throw new BadRequestError(`invalid request target ${JSON.stringify(url.slice(0, 100))}`);
  }
  if (m[1]!.includes('@')) throw new BadRequestError('credentials in the request URI are not allowed');
  const target = parseAuthority(m[1]!);
  // The URI wins over the Host header (RFC 9112 3.2.2); make them agree upstream.
  req.headers.host = m[1]!;
  req.url = m[2]!.startsWith('/') ? m[2]! : `/${m[2]!}`;
  return target;
}

/** Reject what different servers could read differently (request smuggling and kin). */
export function checkAmbiguity(req: IncomingMessage): void {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) throw new BadRequestError('more than one Host header');
  const url = req.url ?? '';
  if (url.length === 0 || /[\s\x00-\x1f\x7f]/.test(url)) throw new BadRequestError('invalid request target');
}

/** First route whose match holds (SPEC.md: first match wins). */
export function matchRoute(policy: TrafficPolicy | undefined, method: string, path: string): RouteConfig | undefined {
  if (!policy || policy.routes.length === 0) return undefined;
  for (const route of policy.routes) {
    const { pathPrefix, methods } = route.match;
    if (pathPrefix !== undefined && !path.startsWith(pathPrefix)) continue;
    if (methods !== undefined && !methods.includes(method)) continue;
    return route;
  }
  return undefined;
}
