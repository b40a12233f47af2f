// The control server: one HTTP(S) port carrying the admin REST API and the proxies'
// WebSocket subscriptions, over the versioned store.
import * as fs from 'node:fs';
import * as http from 'node:http';
import { listen as bind } from '../proxy/runtime/listen';
import { keepNextTickShape } from '../proxy/runtime/next-tick-shape';
import * as https from 'node:https';
import { WebSocketServer } from 'ws';
import { SUBSCRIBE_PATH } from '../proxy/control-client/protocol';
import type { Logger } from '../proxy/runtime/logger';
import { handleAdminRequest } from './admin-api';
import { handleDashboard } from './dashboard';
import { PushHub } from './push-hub';
import { VersionStore } from './store';
import { bearerToken, createTokenCheck, loadOrCreateToken } from './tokens';

export interface ControlServerOptions {
  readonly port: number;
  readonly host?: string;
  readonly dataDir: string;
  readonly adminTokenFile?: string;
  readonly proxyTokenFile?: string;
  readonly tlsCert?: Buffer;
  readonly tlsKey?: Buffer;
  readonly logger: Logger;
  /** Push debounce, at most 10 ms. */
  readonly debounceMs?: number;
  readonly heartbeatMs?: number;
}

export interface ControlServer {
  readonly port: number;
  readonly url: string;
  readonly adminTokenFile: string;
  readonly proxyTokenFile: string;
  readonly store: VersionStore;
  readonly hub: PushHub;
  close(): Promise<void>;
}

export async function startControlServer(opts: ControlServerOptions): Promise<ControlServer> {
  // The same V8 pitfall as the proxy's (proxy/runtime/next-tick-shape.ts): pushes are nextTick-heavy.
  keepNextTickShape();
  const store = VersionStore.open(opts.dataDir);
  try {
    return await listen(opts, store);
  } catch (err) {
    store.close();
    throw err;
  }
}

async function listen(opts: ControlServerOptions, store: VersionStore): Promise<ControlServer> {
  const { logger } = opts;
  const admin = loadOrCreateToken(opts.dataDir, 'admin.token', opts.adminTokenFile);
  const proxy = loadOrCreateToken(opts.dataDir, 'proxy.token', opts.proxyTokenFile);
  // Only the file names are ever logged, never the tokens.
  if (admin.created) logger.info('generated the admin token', { file: admin.file });
  if (proxy.created) logger.info('generated the proxy token', { file: proxy.file });
  const adminToken = createTokenCheck(admin.token);
  const proxyToken = createTokenCheck(proxy.token);

  const hub = new PushHub({ current: () => store.current(), logger, debounceMs: opts.debounceMs, heartbeatMs: opts.heartbeatMs });
  const deps = { store, hub, adminToken, logger, onStored: () => hub.notify() };
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (handleDashboard(req, res)) return;
    handleAdminRequest(deps, req, res).then((handled) => {
      if (handled) return;
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `no route for ${req.method} ${req.url?.split('?')[0]}`, code: 'PILLION_NOT_FOUND' }));
    }, () => res.destroy());
  };
  const tls = opts.tlsCert && opts.tlsKey;
  const server = tls ? https.createServer({ cert: opts.tlsCert, key: opts.tlsKey }, onRequest) : http.createServer(onRequest);
  // Subscriptions are small JSON messages; the documents only flow server -> proxy.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 256 * 1024, perMessageDeflate: false });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== SUBSCRIBE_PATH) return refuse(socket, 404, 'Not Found');
    if (!proxyToken.matches(bearerToken(req.headers.authorization))) return refuse(socket, 401, 'Unauthorized');
    wss.handleUpgrade(req, socket, head, (ws) => hub.attach(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  const port = await bind(server, opts.port, opts.host ?? '0.0.0.0');
  const host = opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1';
  const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info('control server listening', { port, url, data: opts.dataDir, version: store.current().version });

  let closing: Promise<void> | undefined;
  return {
    port, url, store, hub, adminTokenFile: admin.file, proxyTokenFile: proxy.file,
    close() {
      closing ??= new Promise<void>((resolve) => {
        hub.close();
        wss.close();
        server.close(() => {
          store.close();
          resolve();
        });
        server.closeAllConnections?.();
      });
      return closing;
    },
  };
}

function refuse(socket: import('node:stream').Duplex, status: number, text: string): void {
  const body = JSON.stringify({ error: status === 401 ? 'missing or invalid bearer token' : text });
  socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

export function readTlsFiles(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  return { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) };
}
