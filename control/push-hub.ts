// Proxy subscriptions: who is connected, what each was sent and acknowledged, and the push of
// every new version to every connection, scoped to the services that proxy needs.
import type { WebSocket } from 'ws';
import {
  CLOSE_PROTOCOL_ERROR, CLOSE_REPLACED, ConfigMessage, HelloMessage, MAX_REASON_LENGTH, PROTOCOL_VERSION,
} from '../proxy/control-client/protocol';
import type { Logger } from '../proxy/runtime/logger';
import { isDnsLabel } from '../proxy/config';
import { PolicyDocument, policyService } from './store';

export type SyncState = 'SYNCED' | 'STALE' | 'NACKED';

export interface ProxyStatus {
  readonly proxyId: string;
  readonly service: string;
  readonly egress: readonly string[] | undefined;
  readonly address: string;
  readonly connectedAt: string;
  readonly lastSeen: string;
  readonly sentVersion: number | undefined;
  readonly ackedVersion: number | undefined;
  readonly state: SyncState;
  /** Why the proxy refused the version it was last sent, when state is NACKED. */
  readonly reason: string | undefined;
}

export interface Convergence {
  readonly version: number;
  readonly proxies: number;
  /** From the version being stored to the last connected proxy acknowledging it. */
  readonly storedToAckedMs: number;
  /** From the version being stored to the server having written it to every connection. */
  readonly storedToSentMs: number | undefined;
}

export interface PushHubOptions {
  /** What to push: the current version and its whole document set. */
  current(): { version: number; documents: readonly PolicyDocument[] };
  logger: Logger;
  /** Versions stored within this window are pushed once, as the latest. At most 10 ms. */
  debounceMs?: number;
  /** Ping period; a connection that missed a whole period's pong is dropped. */
  heartbeatMs?: number;
  /** Time allowed between the WebSocket opening and the hello. */
  helloTimeoutMs?: number;
}

interface Connection {
  readonly ws: WebSocket;
  readonly address: string;
  readonly connectedAt: number;
  hello: HelloMessage | undefined;
  lastSeen: number;
  alive: boolean;
  sentVersion: number | undefined;
  ackedVersion: number | undefined;
  nack: { version: number; reason: string } | undefined;
}

const PROXY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;

export class PushHub {
  private readonly connections = new Set<Connection>();
  private readonly byProxyId = new Map<string, Connection>();
  private debounce: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  /** The serialised message per scope, for the version last pushed: built once, sent many times. */
  private messageCache = { version: -1, byScope: new Map<string, Buffer>() };
  private pending: { version: number; storedAt: number; sentAt: number | undefined; waiting: Set<Connection> } | undefined;
  private convergence: Convergence | undefined;
  private readonly debounceMs: number;

  constructor(private readonly opts: PushHubOptions) {
    this.debounceMs = Math.min(10, Math.max(0, opts.debounceMs ?? 2));
    const heartbeatMs = opts.heartbeatMs ?? 15_000;
    this.heartbeat = setInterval(() => this.ping(), heartbeatMs);
    this.heartbeat.unref();
  }

  /** A proxy's WebSocket, already authenticated. */
  attach(ws: WebSocket, address: string): void {
    const now = Date.now();
    const conn: Connection = {
      ws, address, connectedAt: now, hello: undefined, lastSeen: now, alive: true,
      sentVersion: undefined, ackedVersion: undefined, nack: undefined,
    };
    this.connections.add(conn);
    const helloTimer = setTimeout(() => {
      if (!conn.hello) this.reject(conn, 'no hello received');
    }, this.opts.helloTimeoutMs ?? 10_000);
    helloTimer.unref();
    ws.on('pong', () => { conn.alive = true; conn.lastSeen = Date.now(); });
    ws.on('message', (data, isBinary) => {
      conn.lastSeen = Date.now();
      conn.alive = true;
      if (isBinary) return this.reject(conn, 'messages must be JSON text');
      let msg: unknown;
      try {
        msg = JSON.parse(data.toString());
      } catch {
        return this.reject(conn, 'message is not JSON');
      }
      this.onMessage(conn, msg);
    });
    ws.on('close', () => {
      clearTimeout(helloTimer);
      this.connections.delete(conn);
      if (conn.hello && this.byProxyId.get(conn.hello.proxyId) === conn) this.byProxyId.delete(conn.hello.proxyId);
      this.pending?.waiting.delete(conn);
      this.checkConverged();
      if (conn.hello) this.opts.logger.info('proxy disconnected', { proxyId: conn.hello.proxyId, service: conn.hello.service });
    });
    ws.on('error', () => { /* 'close' follows; nothing else to do */ });
  }

  /** Called after a version is stored (committed). */
  notify(): void {
    const storedAt = performance.now();
    const { version } = this.opts.current();
    // Every connection must acknowledge this version (or a later one) for it to converge.
    this.pending = { version, storedAt, sentAt: undefined, waiting: new Set([...this.connections].filter((c) => c.hello)) };
    this.checkConverged();
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.pushAll();
    }, this.debounceMs);
  }

  status(): ProxyStatus[] {
    const { version } = this.opts.current();
    const rows: ProxyStatus[] = [];
    for (const c of this.connections) {
      if (!c.hello) continue;
      const state: SyncState = c.ackedVersion === version ? 'SYNCED' : c.nack ? 'NACKED' : 'STALE';
      rows.push({
        proxyId: c.hello.proxyId, service: c.hello.service, egress: c.hello.egress, address: c.address,
        connectedAt: new Date(c.connectedAt).toISOString(), lastSeen: new Date(c.lastSeen).toISOString(),
        sentVersion: c.sentVersion, ackedVersion: c.ackedVersion, state,
        reason: state === 'NACKED' ? c.nack?.reason : undefined,
      });
    }
    return rows.sort((a, b) => (a.service + a.proxyId < b.service + b.proxyId ? -1 : 1));
  }

  lastConvergence(): Convergence | undefined {
    return this.convergence;
  }

  get size(): number {
    return this.connections.size;
  }

  close(): void {
    clearInterval(this.heartbeat);
    if (this.debounce) clearTimeout(this.debounce);
    for (const c of this.connections) c.ws.terminate();
    this.connections.clear();
    this.byProxyId.clear();
  }

  private onMessage(conn: Connection, msg: unknown): void {
    const m = msg as { type?: unknown; version?: number; reason?: unknown } | null;
    if (!m || typeof m !== 'object') return this.reject(conn, 'message must be an object');
    if (m.type === 'hello') return this.onHello(conn, m as Partial<HelloMessage>);
    if (!conn.hello) return this.reject(conn, 'the first message must be a hello');
    if ((m.type !== 'ack' && m.type !== 'nack') || !Number.isSafeInteger(m.version) || m.version! < 0) {
      return this.reject(conn, 'expected {"type":"ack"|"nack","version":N}');
    }
    const version = m.version!;
    if (m.type === 'ack') {
      if (conn.ackedVersion === undefined || version > conn.ackedVersion) conn.ackedVersion = version;
      if (conn.nack && version >= conn.nack.version) conn.nack = undefined;
      if (this.pending && version >= this.pending.version && this.pending.waiting.delete(conn)) this.checkConverged();
    } else {
      const reason = typeof m.reason === 'string' && m.reason ? m.reason.slice(0, MAX_REASON_LENGTH) : 'no reason given';
      conn.nack = { version, reason };
      this.opts.logger.warn('proxy rejected a version', { proxyId: conn.hello.proxyId, service: conn.hello.service, version, reason });
    }
  }

  private onHello(conn: Connection, m: Partial<HelloMessage>): void {
    if (conn.hello) return this.reject(conn, 'hello sent twice');
    if (m.protocol !== PROTOCOL_VERSION) return this.reject(conn, `unsupported protocol ${JSON.stringify(m.protocol)} (this server speaks ${PROTOCOL_VERSION})`);
    if (typeof m.proxyId !== 'string' || !PROXY_ID.test(m.proxyId)) return this.reject(conn, 'hello.proxyId must be 1-253 characters of letters, digits, . _ : -');
    if (typeof m.service !== 'string' || !isDnsLabel(m.service)) return this.reject(conn, 'hello.service must be a DNS label');
    if (m.egress !== undefined && (!Array.isArray(m.egress) || !m.egress.every((s) => typeof s === 'string' && isDnsLabel(s)))) {
      return this.reject(conn, 'hello.egress must be a list of service names');
    }
    const hello: HelloMessage = { type: 'hello', protocol: m.protocol, proxyId: m.proxyId, service: m.service, egress: m.egress ? [...new Set(m.egress)].sort() : undefined };
    const previous = this.byProxyId.get(hello.proxyId);
    if (previous) previous.ws.close(CLOSE_REPLACED, 'replaced by a newer connection with the same proxy id');
    conn.hello = hello;
    this.byProxyId.set(hello.proxyId, conn);
    this.opts.logger.info('proxy connected', { proxyId: hello.proxyId, service: hello.service, address: conn.address });
    const { version } = this.opts.current();
    if (this.pending && this.pending.version === version && version !== this.convergence?.version) this.pending.waiting.add(conn);
    this.send(conn);
  }

  private pushAll(): void {
    for (const c of this.connections) if (c.hello) this.send(c);
    if (this.pending) this.pending.sentAt = performance.now();
  }

  private send(conn: Connection): void {
    const { version } = this.opts.current();
    if (conn.sentVersion === version) return;
    const frame = this.message(conn.hello!);
    conn.sentVersion = version;
    // A Buffer sent as text: ws then frames it without re-encoding the string per connection.
    conn.ws.send(frame, { binary: false });
  }

  /** The config message for a proxy's scope, serialised once per scope and version. */
  private message(hello: HelloMessage): Buffer {
    const { version, documents } = this.opts.current();
    if (this.messageCache.version !== version) this.messageCache = { version, byScope: new Map() };
    const key = hello.egress ? `${hello.service}|${hello.egress.join(',')}` : '*';
    let text = this.messageCache.byScope.get(key);
    if (text === undefined) {
      const wanted = hello.egress ? new Set([hello.service, ...hello.egress]) : undefined;
      const scoped = wanted ? documents.filter((d) => wanted.has(policyService(d))) : documents;
      const msg: ConfigMessage = { type: 'config', version, documents: scoped };
      text = Buffer.from(JSON.stringify(msg));
      this.messageCache.byScope.set(key, text);
    }
    return text;
  }

  private checkConverged(): void {
    const p = this.pending;
    if (!p || p.waiting.size > 0) return;
    this.pending = undefined;
    const proxies = [...this.connections].filter((c) => c.hello && (c.ackedVersion ?? -1) >= p.version).length;
    const ms = (t: number) => Math.round((t - p.storedAt) * 100) / 100;
    this.convergence = { version: p.version, proxies, storedToAckedMs: ms(performance.now()), storedToSentMs: p.sentAt === undefined ? undefined : ms(p.sentAt) };
  }

  private reject(conn: Connection, reason: string): void {
    if (conn.ws.readyState === conn.ws.OPEN) {
      conn.ws.send(JSON.stringify({ type: 'error', reason }));
      conn.ws.close(CLOSE_PROTOCOL_ERROR, reason.slice(0, 120));
    }
  }

  private ping(): void {
    for (const c of this.connections) {
      if (!c.alive) {
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }
}
