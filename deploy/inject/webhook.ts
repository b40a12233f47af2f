// The HTTPS server the API server calls for each new pod in a labelled namespace
// (MutatingWebhookConfiguration in deploy/kubernetes/). Started by `pillion control` on 15017.
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listen } from '../../proxy/runtime/listen';
import { reviewAdmission } from './admission';
import { injectOptions, InjectOptions } from './options';
import { createStderrLogger, Logger } from '../../proxy/runtime/logger';

export interface InjectionWebhookOptions {
  port: number;
  host?: string;
  cert: Buffer;
  key: Buffer;
  /**
   * The control server's URL as application pods reach it. $PILLION_INJECT_CONTROL_URL wins; a
   * loopback or wildcard address (the control server's own listen URL) is ignored, since it means
   * the pod itself from inside a pod; the default is the in-cluster Service of deploy/kubernetes/.
   */
  controlUrl?: string;
  /** Image for the injected containers; default $PILLION_PROXY_IMAGE, else the built-in default. */
  image?: string;
  /** Largest request body accepted (default 4 MiB: an AdmissionReview for the largest pod etcd stores). */
  maxBodyBytes?: number;
  logger?: Logger;
}

export interface InjectionWebhook {
  port: number;
  close(): Promise<void>;
}

const PATHS = new Set(['/inject', '/mutate']);

export async function startInjectionWebhook(opts: InjectionWebhookOptions): Promise<InjectionWebhook> {
  const inject: InjectOptions = injectOptions({
    controlUrl: process.env.PILLION_INJECT_CONTROL_URL || reachableFromPods(opts.controlUrl),
    image: opts.image ?? (process.env.PILLION_PROXY_IMAGE || undefined),
  });
  const maxBody = opts.maxBodyBytes ?? 4 * 1024 * 1024;
  const log = opts.logger ?? createStderrLogger('inject-webhook');

  const server = https.createServer({ cert: opts.cert, key: opts.key }, (req, res) => {
    handle(req, res, inject, maxBody, log);
  });
  // The API server's own timeout for a webhook is at most 30 s; a client slower than that is not it.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;
  server.on('tlsClientError', () => {}); // a failed handshake is the client's problem, not ours

  const port = await listen(server, opts.port, opts.host ?? '0.0.0.0');
  log.info('injection webhook listening', { port, paths: [...PATHS] });
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

function reachableFromPods(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    if (host === 'localhost' || host === '0.0.0.0' || host === '::' || host === '::1' || host.startsWith('127.')) return undefined;
  } catch {
    return undefined;
  }
  return url;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function handle(req: IncomingMessage, res: ServerResponse, inject: InjectOptions, maxBody: number, log: Logger): void {
  const path = (req.url ?? '/').split('?')[0]!;
  if (req.method === 'GET' && (path === '/healthz' || path === '/ready')) return send(res, 200, { status: 'ok' });
  if (!PATHS.has(path)) return send(res, 404, { error: `no such path ${path}; the webhook serves POST /inject` });
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    return send(res, 405, { error: 'use POST with an AdmissionReview body' });
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBody) {
    res.setHeader('connection', 'close');
    send(res, 413, { error: `request body larger than ${maxBody} bytes` });
    req.resume();
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  req.on('data', (chunk: Buffer) => {
    if (done) return;
    size += chunk.length;
    if (size > maxBody) {
      done = true;
      res.setHeader('connection', 'close');
      send(res, 413, { error: `request body larger than ${maxBody} bytes` });
      req.resume();
      return;
    }
    chunks.push(chunk);
  });
  req.on('error', () => { done = true; });
  req.on('end', () => {
    if (done) return;
    done = true;
    try {
      const outcome = reviewAdmission(Buffer.concat(chunks).toString('utf8'), inject);
      (outcome.statusCode === 200 ? log.info : log.warn)(outcome.summary);
      send(res, outcome.statusCode, outcome.body);
    } catch (err) {
      // reviewAdmission does not throw; this is the last line that keeps the server alive if it ever does.
      log.error('webhook failure', { error: (err as Error)?.message });
      send(res, 500, { error: 'internal error' });
    }
  });
}
