// The admin REST API (apply, get, delete, status, history, rollback): JSON in, JSON out,
// every route behind the admin token.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError } from '../proxy/config';
import { BadRequestError, ControlError, NotFoundError, UnauthorizedError } from './errors';
import type { Logger } from '../proxy/runtime/logger';
import type { PushHub } from './push-hub';
import { policyName, VersionStore } from './store';
import { bearerToken, TokenCheck } from './tokens';

const MAX_BODY = 4 * 1024 * 1024;

export interface AdminApiDeps {
  readonly store: VersionStore;
  readonly hub: PushHub;
  readonly adminToken: TokenCheck;
  readonly logger: Logger;
  /** Called after each stored version, so that the hub pushes it. */
  onStored(): void;
}

type Json = Record<string, unknown>;

/** Handles the request if it is an admin API route; returns false otherwise. */
export async function handleAdminRequest(deps: AdminApiDeps, req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://control');
  const p = url.pathname;
  if (req.method === 'GET' && p === '/healthz') {
    send(res, 200, { ok: true });
    return true;
  }
  if (!p.startsWith('/v1/') || p === '/v1/subscribe') return false;
  try {
    if (!deps.adminToken.matches(bearerToken(req.headers.authorization))) throw new UnauthorizedError();
    send(res, 200, await route(deps, req, url));
  } catch (err) {
    sendError(res, err);
    if (!(err instanceof ControlError) && !(err instanceof ConfigError)) {
      deps.logger.error('admin request failed', { method: req.method, path: url.pathname, error: (err as Error)?.message });
    }
  }
  return true;
}

async function route(deps: AdminApiDeps, req: IncomingMessage, url: URL): Promise<Json> {
  const { store, hub } = deps;
  const method = req.method ?? 'GET';
  const p = url.pathname;
  let m: RegExpExecArray | null;
  if (p === '/v1/policies' && method === 'GET') {
    const { version, documents } = store.current();
    return { version, items: documents };
  }
  if ((m = /^\/v1\/policies\/([^/]+)$/.exec(p))) {
    const name = decodeURIComponent(m[1]!);
    if (method === 'GET') {
      const { version, documents } = store.current();
      const doc = documents.find((d) => policyName(d) === name);
      if (!doc) throw new NotFoundError(`trafficpolicy "${name}" not found`);
      return { version, item: doc };
    }
    if (method === 'DELETE') {
      const version = store.delete(name);
      deps.onStored();
      return { version, deleted: name };
    }
  }
  if (p === '/v1/apply' && method === 'POST') {
    const body = await readJson(req);
    if (!Array.isArray(body.documents)) throw new BadRequestError('body must be {"documents": [...]}');
    const labels = Array.isArray(body.labels) && body.labels.every((l) => typeof l === 'string') ? (body.labels as string[]) : undefined;
    const result = store.apply(body.documents, labels);
    if (result.changed) deps.onStored();
    return { ...result };
  }
  if (p === '/v1/status' && method === 'GET') {
    return { version: store.current().version, proxies: hub.status(), convergence: hub.lastConvergence() ?? null };
  }
  if (p === '/v1/history' && method === 'GET') {
    const limit = Number(url.searchParams.get('limit') ?? 1000);
    if (!Number.isInteger(limit) || limit < 1) throw new BadRequestError('limit must be a positive integer');
    return { version: store.current().version, versions: store.history(limit) };
  }
  if ((m = /^\/v1\/history\/(\d+)$/.exec(p)) && method === 'GET') {
    return { ...store.get(Number(m[1])) };
  }
  if (p === '/v1/rollback' && method === 'POST') {
    const body = await readJson(req);
    if (body.to !== undefined && (!Number.isSafeInteger(body.to) || (body.to as number) < 1)) throw new BadRequestError('"to" must be a version number');
    const result = store.rollback(body.to as number | undefined);
    deps.onStored();
    return result;
  }
  throw new NotFoundError(`no route for ${method} ${p}`);
}

async function readJson(req: IncomingMessage): Promise<Json> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new ControlError('PILLION_TOO_LARGE', 413, `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadRequestError('request body is not JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new BadRequestError('request body must be a JSON object');
  return value as Json;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): void {
  if (err instanceof ConfigError) {
    send(res, 400, { error: 'invalid configuration', code: err.code, issues: err.issues });
  } else if (err instanceof ControlError) {
    if (err.status === 401) res.setHeader('www-authenticate', 'Bearer');
    send(res, err.status, { error: err.message, code: err.code, ...(err.issues ? { issues: err.issues } : {}) });
  } else {
    send(res, 500, { error: 'internal error', code: 'PILLION_INTERNAL' });
  }
}
