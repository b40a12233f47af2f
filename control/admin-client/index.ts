// The admin REST API's client, used by the CLI commands (apply, get, delete, status, history,
// rollback) and the demo: flags to a target, requests, and errors a user can act on.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';

export const DEFAULT_CONTROL_URL = 'http://127.0.0.1:15010';

export interface AdminTarget {
  readonly url: string;
  readonly token: string | undefined;
  /** Where the token came from, for error messages (never the token itself). */
  readonly tokenSource: string;
  readonly ca: Buffer | undefined;
}

export type AdminErrorKind = 'unreachable' | 'unauthorized' | 'refused' | 'protocol';

export class AdminClientError extends Error {
  constructor(readonly kind: AdminErrorKind, message: string, readonly status?: number, readonly issues?: readonly string[]) {
    super(message);
    this.name = 'AdminClientError';
  }
}

/**
 * The token: --token-file, else PILLION_TOKEN, else the default data directory's admin.token
 * (so that `pillion status` works beside a `pillion control` started with defaults).
 */
export function resolveTarget(flags: { control?: string; 'token-file'?: string; 'ca-file'?: string }, env = process.env): AdminTarget {
  const url = (flags.control ?? env.PILLION_CONTROL_URL ?? DEFAULT_CONTROL_URL).replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AdminClientError('protocol', `--control must be a URL such as ${DEFAULT_CONTROL_URL} (got ${JSON.stringify(url)})`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new AdminClientError('protocol', `--control must be http:// or https:// (got ${JSON.stringify(url)})`);
  const ca = flags['ca-file'] ? readFileOrFail(flags['ca-file'], 'CA file') : undefined;
  if (flags['token-file']) return { url, token: readFileOrFail(flags['token-file'], 'token file').toString('utf8').trim(), tokenSource: flags['token-file'], ca };
  if (env.PILLION_TOKEN) return { url, token: env.PILLION_TOKEN.trim(), tokenSource: 'PILLION_TOKEN', ca };
  const local = path.resolve('.pillion', 'admin.token');
  try {
    return { url, token: fs.readFileSync(local, 'utf8').trim(), tokenSource: local, ca };
  } catch {
    return { url, token: undefined, tokenSource: 'none', ca };
  }
}

function readFileOrFail(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new AdminClientError('protocol', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export async function adminRequest<T = Record<string, unknown>>(target: AdminTarget, method: string, apiPath: string, body?: unknown, timeoutMs = 10_000): Promise<T> {
  const u = new URL(target.url + apiPath);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(payload.length);
  }
  const mod = u.protocol === 'https:' ? https : http;
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = mod.request(u, { method, headers, ca: target.ca, timeout: timeoutMs, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs}ms`), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(new AdminClientError('unreachable', `cannot reach the control server at ${target.url} (${err.code ?? err.message})`));
    });
    req.end(payload);
  });
  let json: Record<string, unknown> = {};
  try {
    json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    throw new AdminClientError('protocol', `${target.url} answered ${status} with something that is not JSON; is it a Pillion control server?`, status);
  }
  if (status === 401) {
    const hint = target.token === undefined ? 'no admin token given; set PILLION_TOKEN or --token-file' : `the admin token from ${target.tokenSource} was refused`;
    throw new AdminClientError('unauthorized', `unauthorized (401): ${hint}`, 401);
  }
  if (status < 200 || status >= 300) {
    const issues = Array.isArray(json.issues) ? (json.issues as string[]) : undefined;
    throw new AdminClientError('refused', String(json.error ?? `HTTP ${status}`), status, issues);
  }
  return json as T;
}
