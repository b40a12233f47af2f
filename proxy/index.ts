// The sidecar: start here. Assembles listeners (./listeners), the per-version service table
// (./runtime/service-table), the admin API (./admin) and the policies (./policies/*, whose
// order per listener is in ./listeners/stacks.ts).
import type { Writable } from 'node:stream';
import type { Endpoint, PolicySnapshot } from './config';
import { createAdminServer } from './admin';
import { createProxyServer } from './forward/forwarder';
import { createListener, ListenerState } from './listeners/listener';
import { createAccessLog } from './observability/access-log';
import { createProxyMetrics, ProxyMetrics } from './observability/metrics';
import { Clock, systemClock } from './runtime/clock';
import { createStderrLogger, Logger } from './runtime/logger';
import { ServiceTable } from './runtime/service-table';
import { listen } from './runtime/listen';
import { keepNextTickShape } from './runtime/next-tick-shape';
import { startTracing } from './tracing';
import { transparentSupport } from './transparent';

export interface ProxyOptions {
  readonly service: string;
  readonly app?: Endpoint;
  readonly inboundPort?: number;
  readonly outboundPort?: number;
  readonly adminPort?: number;
  /** Inbound must accept redirected traffic on the pod's address; default 0.0.0.0. */
  readonly inboundHost?: string;
  /** Only the app calls out through us; default 127.0.0.1. */
  readonly outboundHost?: string;
  readonly drainTimeoutMs?: number;
  readonly headerTimeoutMs?: number;
  readonly redisUrl?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly metrics?: ProxyMetrics;
  /** Where access-log lines go; default stdout; null disables. */
  readonly accessLog?: Writable | null;
  /** Applied before the listeners open (a file, or a cached control-server version). */
  readonly initialSnapshot?: PolicySnapshot;
  /** Where the OTEL_* tracing variables are read (proxy/tracing); default process.env. */
  readonly tracingEnv?: NodeJS.ProcessEnv;
}

export interface RunningProxy {
  readonly ports: { readonly inbound: number; readonly outbound: number; readonly admin: number };
  readonly metrics: ProxyMetrics;
  /** Swap in a new decoded version atomically; marks the config as loaded. */
  applySnapshot(snapshot: PolicySnapshot): Promise<void>;
  snapshot(): PolicySnapshot;
  /** Graceful drain (SIGTERM, POST /drain): resolves when in-flight requests are done or the timeout passes. */
  drain(): Promise<void>;
  /** Resolves when a drain has finished (whoever started it). */
  readonly drained: Promise<void>;
  /** Close everything at once. */
  close(): Promise<void>;
}


export async function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  // Before any load: V8 would otherwise, after a few major GCs, make every nextTick slow.
  keepNextTickShape();
  const logger = opts.logger ?? createStderrLogger('proxy');
  const metrics = opts.metrics ?? createProxyMetrics();
  const clock = opts.clock ?? systemClock;
  const accessLog = createAccessLog(opts.accessLog === null ? undefined : opts.accessLog ?? process.stdout);
  const proxy = createProxyServer();
  const tracing = startTracing({ serviceName: opts.service, metrics, logger, env: opts.tracingEnv });
  const deps = { clock, metrics, logger, redisUrl: opts.redisUrl, selfService: opts.service, tracing };
  const table = new ServiceTable(deps, proxy);
  let configLoaded = false;
  let listening = false;
  const state: ListenerState = { draining: false, inFlight: 0, onIdle: undefined };
  metrics.setInFlightSource(() => {
    const { outbound, outboundDefault, inbound } = table.current;
    let out = outboundDefault.inFlight;
    for (const r of outbound.values()) out += r.inFlight;
    return { inbound: inbound.inFlight, outbound: out };
  });

  const applySnapshot = async (snapshot: PolicySnapshot) => {
    await table.apply(snapshot);
    configLoaded = true;
    metrics.configVersion.set(typeof snapshot.version === 'number' ? snapshot.version : Number(snapshot.version) || 0);
  };
  if (opts.initialSnapshot) await applySnapshot(opts.initialSnapshot);

  const ports = { inbound: 0, outbound: 0, admin: 0 };
  const common = {
    table, proxy, metrics, accessLog, logger, state, selfService: opts.service, app: opts.app,
    headerTimeoutMs: opts.headerTimeoutMs ?? 10_000,
    ownPorts: () => [ports.inbound, ports.outbound, ports.admin],
  };
  const inbound = createListener({ ...common, direction: 'inbound' });
  const outbound = createListener({ ...common, direction: 'outbound' });

  let drainPromise: Promise<void> | undefined;
  let resolveDrained!: () => void;
  const drained = new Promise<void>((r) => { resolveDrained = r; });
  const drain = (): Promise<void> => {
    if (drainPromise) return drainPromise;
    drainPromise = new Promise<void>((resolve) => {
      state.draining = true;
      logger.info('draining', { in_flight: state.inFlight, timeout_ms: opts.drainTimeoutMs ?? 5000 });
      // Stop accepting: new connections are refused; idle keep-alive connections close now,
      // busy ones after their response (which carries `connection: close`).
      inbound.close();
      outbound.close();
      inbound.closeIdleConnections();
      outbound.closeIdleConnections();
      const timer = setTimeout(finish, opts.drainTimeoutMs ?? 5000);
      timer.unref();
      function finish() {
        clearTimeout(timer);
        state.onIdle = undefined;
        accessLog.flush();
        resolve();
        resolveDrained();
      }
      if (state.inFlight === 0) finish();
      else state.onIdle = finish;
    });
    return drainPromise;
  };

  const support = transparentSupport();
  const admin = createAdminServer({
    ready: () => configLoaded && listening && !state.draining,
    snapshot: () => table.current.snapshot,
    extraDump: () => ({
      service: opts.service,
      transparent: support.available ? { available: true } : { available: false, reason: support.reason, mode: 'explicit' },
    }),
    clusters: () => table.describeClusters(),
    metrics,
    drain: () => { void drain(); },
  });

  try {
    ports.admin = await listen(admin, opts.adminPort ?? 15000, '127.0.0.1');
    ports.inbound = await listen(inbound, opts.inboundPort ?? 15006, opts.inboundHost ?? '0.0.0.0');
    ports.outbound = await listen(outbound, opts.outboundPort ?? 15001, opts.outboundHost ?? '127.0.0.1');
  } catch (err) {
    admin.close(); inbound.close(); outbound.close();
    await table.close();
    await tracing.shutdown();
    throw err;
  }
  listening = true;

  return {
    ports, metrics, applySnapshot, drain, drained,
    snapshot: () => table.current.snapshot,
    async close() {
      state.draining = true;
      accessLog.flush();
      for (const s of [inbound, outbound, admin]) {
        s.close();
        s.closeAllConnections();
      }
      await table.close();
      proxy.close();
      // Sends the spans still queued (bounded: a collector that is down does not hold the exit).
      await tracing.shutdown();
    },
  };
}
