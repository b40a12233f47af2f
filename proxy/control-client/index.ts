// The proxy's subscription to the control server: receive each version, apply it, ACK or NACK,
// keep the last good one on disk, reconnect with jittered exponential backoff.
import * as fs from 'node:fs';
import WebSocket from 'ws';
import { ConfigError } from '../config';
import type { ProxyMetrics } from '../observability/metrics';
import type { Logger } from '../runtime/logger';
import { readCachedConfig, writeCachedConfig } from './cache';
import {
  AckMessage, ConfigMessage, HelloMessage, MAX_REASON_LENGTH, NackMessage, PROTOCOL_VERSION, SUBSCRIBE_PATH, ServerToProxy,
} from './protocol';

export { readCachedConfig } from './cache';
export type { CachedConfig } from './cache';
export * from './protocol';

export interface ControlClientOptions {
  readonly url: string;
  readonly token: string;
  /** PEM file of a CA to trust for https:// control URLs. */
  readonly caFile: string | undefined;
  readonly service: string;
  readonly proxyId: string;
  /** Destinations this proxy calls; undefined means all. */
  readonly egress: readonly string[] | undefined;
  readonly cacheDir: string;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  /** Decode and swap in a pushed version; throws (ConfigError or other) to reject it. */
  apply(version: number, documents: readonly unknown[]): Promise<void>;
  /** Reconnect backoff: full jitter between 0 and min(maxMs, initialMs * 2^failures). */
  readonly reconnect?: { readonly initialMs?: number; readonly maxMs?: number };
  /** A connection that hears nothing (not even a ping) for this long is dropped. */
  readonly idleTimeoutMs?: number;
  /** Injected randomness for the jitter. */
  readonly random?: () => number;
}

export interface ControlClient {
  /** Whether the subscription is open, and the version last applied (from the cache at start). */
  state(): { connected: boolean; version: number | undefined };
  stop(): Promise<void>;
}

/** http(s)://host:port[/prefix] -> ws(s)://host:port[/prefix]/v1/subscribe */
export function subscribeUrl(controlUrl: string): string {
  const u = new URL(controlUrl);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`control URL must be http(s):// (got ${u.protocol})`);
  u.pathname = u.pathname.replace(/\/+$/, '') + SUBSCRIBE_PATH;
  u.search = '';
  return u.toString();
}

export function startControlClient(opts: ControlClientOptions): ControlClient {
  const { logger, metrics } = opts;
  const target = subscribeUrl(opts.url);
  const ca = opts.caFile ? fs.readFileSync(opts.caFile) : undefined;
  const initialMs = opts.reconnect?.initialMs ?? 250;
  const maxMs = opts.reconnect?.maxMs ?? 30_000;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 45_000;
  const random = opts.random ?? Math.random;

  // What is in force; seeded from the cache, which only ever holds a version that applied.
  const cached = readCachedConfig(opts.cacheDir);
  let applied: { version: number; text: string } | undefined = cached ? { version: cached.version, text: JSON.stringify(cached.documents) } : undefined;
  let cachedApplied = applied;
  let stopped = false;
  let failures = 0;
  let socket: WebSocket | undefined;
  let connected = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  // Pushes are applied one at a time; if several arrive meanwhile only the latest matters.
  let latest: { msg: ConfigMessage; ws: WebSocket } | undefined;
  let applying: Promise<void> | undefined;

  const setConnected = (up: boolean) => {
    connected = up;
    metrics.controlConnected.set(up ? 1 : 0);
  };

  const connect = () => {
    retryTimer = undefined;
    if (stopped) return;
    const ws = new WebSocket(target, {
      headers: { authorization: `Bearer ${opts.token}` },
      ca, perMessageDeflate: false, handshakeTimeout: 10_000,
    });
    socket = ws;
    let down = false;
    const onDown = (why: string) => {
      if (down) return;
      down = true;
      clearTimeout(idleTimer);
      if (socket === ws) socket = undefined;
      if (connected) logger.warn('lost the control server; serving with the config in force', { url: opts.url, reason: why, version: applied?.version });
      setConnected(false);
      scheduleReconnect();
    };
    const touch = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        ws.terminate();
        onDown('no message or ping from the control server');
      }, idleTimeoutMs);
      idleTimer.unref?.();
    };
    ws.on('open', () => {
      failures = 0;
      setConnected(true);
      touch();
      logger.info('connected to the control server', { url: opts.url });
      const hello: HelloMessage = {
        type: 'hello', protocol: PROTOCOL_VERSION, proxyId: opts.proxyId, service: opts.service,
        ...(opts.egress ? { egress: [...opts.egress] } : {}), ...(applied ? { version: applied.version } : {}),
      };
      ws.send(JSON.stringify(hello));
    });
    ws.on('ping', touch);
    ws.on('message', (data) => {
      touch();
      let msg: ServerToProxy;
      try {
        msg = JSON.parse(data.toString()) as ServerToProxy;
      } catch {
        logger.warn('control server sent a message that is not JSON; ignoring it');
        return;
      }
      if (msg.type === 'error') {
        logger.error('control server refused this proxy', { reason: msg.reason });
      } else if (msg.type === 'config' && Number.isSafeInteger(msg.version) && Array.isArray(msg.documents)) {
        latest = { msg, ws };
        applying ??= drain();
      }
    });
    ws.on('unexpected-response', (req, res) => {
      // The token is never logged, only that it was refused.
      const why = res.statusCode === 401 ? 'the control server refused the proxy token (401)' : `the control server answered ${res.statusCode}`;
      logger.error('cannot subscribe to the control server', { url: opts.url, reason: why });
      req.destroy();
      res.resume();
      onDown(why);
    });
    ws.on('error', (err) => onDown(err.message));
    ws.on('close', (code, reason) => onDown(`closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`));
  };

  const scheduleReconnect = () => {
    if (stopped || retryTimer) return;
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(failures, 30));
    failures++;
    const delay = Math.round(random() * ceiling);
    retryTimer = setTimeout(connect, delay);
  };

  const drain = async () => {
    while (latest) {
      const { msg, ws } = latest;
      latest = undefined;
      const reply = await applyOne(msg);
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(reply));
      // The disk copy is for a restart without the control server: it follows the ack, so
      // that an fsync does not sit on every proxy's convergence path.
      if (reply.type === 'ack' && applied && applied.version === msg.version && applied !== cachedApplied) saveCache(applied, msg);
    }
    applying = undefined;
  };

  const saveCache = (what: typeof applied, msg: ConfigMessage) => {
    try {
      writeCachedConfig(opts.cacheDir, { version: msg.version, documents: msg.documents });
      cachedApplied = what;
    } catch (err) {
      // The version is in force; only a restart without the control server would miss it.
      logger.warn('cannot write the config cache', { dir: opts.cacheDir, error: (err as Error).message });
    }
  };

  const applyOne = async (msg: ConfigMessage): Promise<AckMessage | NackMessage> => {
    const text = JSON.stringify(msg.documents);
    // The same content again (a reconnect): acknowledge without rebuilding breakers and buckets.
    if (applied && applied.version === msg.version && applied.text === text) return { type: 'ack', version: msg.version };
    try {
      await opts.apply(msg.version, msg.documents);
    } catch (err) {
      const reason = err instanceof ConfigError ? err.issues.join('; ') : (err as Error)?.message ?? String(err);
      metrics.configErrors.labels('control').inc();
      logger.warn('rejected a pushed version; the previous one stays in force', { version: msg.version, reason, inForce: applied?.version });
      return { type: 'nack', version: msg.version, reason: reason.slice(0, MAX_REASON_LENGTH) };
    }
    // (`apply` logs the swap itself; one line per version is enough.)
    applied = { version: msg.version, text };
    return { type: 'ack', version: msg.version };
  };

  setConnected(false);
  connect();

  return {
    state: () => ({ connected, version: applied?.version }),
    async stop() {
      stopped = true;
      clearTimeout(retryTimer);
      clearTimeout(idleTimer);
      const ws = socket;
      if (ws && ws.readyState !== WebSocket.CLOSED) {
        await new Promise<void>((resolve) => {
          ws.once('close', () => resolve());
          ws.close(1000, 'proxy stopping');
          setTimeout(() => { ws.terminate(); resolve(); }, 1000).unref();
        });
      }
      await applying;
      setConnected(false);
    },
  };
}
