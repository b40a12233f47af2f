// The one place where typed errors become what the client sees (SPEC.md: Local replies).
import type { ServerResponse } from 'node:http';
import type { ProxyError } from '../errors';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 404: 'Not Found', 408: 'Request Timeout', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export function localReplyBody(err: ProxyError): string {
  return JSON.stringify({ error: STATUS_TEXT[err.status] ?? 'Error', reason: err.reason, message: err.message });
}

/** Answer on a response object; returns the body bytes sent, or -1 when it is too late. */
export function sendLocalReply(res: ServerResponse, err: ProxyError, requestId: string, closing: boolean): number {
  if (res.headersSent || res.destroyed) return -1;
  const body = localReplyBody(err);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-pillion-reason': err.reason,
    'x-request-id': requestId,
    ...err.headers,
  };
  if (closing) headers.connection = 'close';
  res.writeHead(err.status, headers);
  const head = res.req?.method === 'HEAD';
  res.end(head ? undefined : body);
  return head ? 0 : Buffer.byteLength(body);
}

/** For errors before a request exists (parse errors): raw bytes on the socket, then close. */
export function rawLocalReply(err: ProxyError): string {
  const body = localReplyBody(err);
  return `HTTP/1.1 ${err.status} ${STATUS_TEXT[err.status] ?? 'Error'}\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
    `x-pillion-reason: ${err.reason}\r\nconnection: close\r\n\r\n${body}`;
}
