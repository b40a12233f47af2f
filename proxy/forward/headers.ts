// Header rules a proxy must apply on every hop: RFC 9110 hop-by-hop removal and the
// x-forwarded-* / x-request-id headers a mesh adds.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { randomUUID } from 'node:crypto';

// `transfer-encoding` is framing: Node re-frames both directions itself, but on requests we
// keep `chunked` so that Node chunks DELETE/OPTIONS bodies too (it would not by default).
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'upgrade', 'http2-settings',
]);

const NO_TOKENS: readonly string[] = [];

function connectionTokens(value: string | string[] | undefined): readonly string[] {
  if (!value) return NO_TOKENS;
  // Nearly every message says just `keep-alive` or `close`: neither names a header that is
  // not hop-by-hop already, and splitting them cost three arrays per message.
  if (typeof value === 'string' && value.length <= 10) {
    const v = value.toLowerCase();
    if (v === 'keep-alive' || v === 'close') return NO_TOKENS;
  }
  const text = Array.isArray(value) ? value.join(',') : value;
  return text.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s.length > 0);
}

/**
 * Clean the incoming request's headers in place (http-proxy copies req.headers into the
 * upstream request) and return its request id.
 */
export function prepareRequestHeaders(headers: IncomingHttpHeaders, clientIp: string): string {
  const te = headers.te;
  for (const token of connectionTokens(headers.connection)) {
    if (token !== 'close' && token !== 'keep-alive') delete headers[token];
  }
  for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name];
  // gRPC needs `te: trailers` end to end; it is the one value of te worth keeping.
  if (typeof te === 'string' && te.trim().toLowerCase() === 'trailers') headers.te = 'trailers';
  const te2 = headers['transfer-encoding'];
  if (te2 !== undefined && te2.toLowerCase() !== 'chunked') headers['transfer-encoding'] = 'chunked';
  // We answer `100 Continue` ourselves (Node does, before the body is read), so the
  // upstream must not wait to be asked again.
  if (headers.expect !== undefined) delete headers.expect;

  const xff = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = xff ? `${xff}, ${clientIp}` : clientIp;
  if (!headers['x-forwarded-proto']) headers['x-forwarded-proto'] = 'http';
  let id = headers['x-request-id'];
  if (typeof id !== 'string' || id.length === 0 || id.length > 200) {
    id = randomUUID();
    headers['x-request-id'] = id;
  }
  return id;
}

/** The upstream response's headers minus hop-by-hop ones, ready for writeHead. */
export function responseHeaders(headers: IncomingHttpHeaders, closing: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const listed = connectionTokens(headers.connection);
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || name === 'transfer-encoding') continue;
    if (listed.length > 0 && listed.includes(name)) continue;
    out[name] = headers[name];
  }
  if (closing) out.connection = 'close';
  return out;
}

/**
 * The request body its headers announce (RFC 9112 6.3): 'chunked' for transfer-encoding, else
 * content-length's value, 0 when there is none (a request without either has no body).
 */
export function announcedBody(headers: IncomingHttpHeaders): number | 'chunked' {
  if (headers['transfer-encoding'] !== undefined) return 'chunked';
  const length = headers['content-length'];
  return length === undefined ? 0 : Number(length);
}
