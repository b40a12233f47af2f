// Convergence of a config push: the time from an apply being stored to every connected proxy
// having acknowledged it, with N simulated proxies that speak the real protocol (WebSocket,
// hello, config, ack) and really decode each version with the proxy's decoder, spread over
// worker threads. The control server runs as its own process (`pillion control`), so its
// memory is measured alone. Run alone: `node dist/bench/convergence.js` (APPLIES=20,
// WORKERS=n to override).
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import WebSocket from 'ws';
import { decodePolicyObjects } from '../proxy/config';
import { PROTOCOL_VERSION, SUBSCRIBE_PATH } from '../proxy/control-client/protocol';

export interface ConvergenceOptions {
  readonly proxies: number;
  /** How many applies to time. */
  readonly applies: number;
  /** Policies in the config, one per service (default 20). */
  readonly policies?: number;
  /**
   * Destinations each proxy declares with --egress (default 2: it receives and decodes its own
   * policy and two others). 'all' = no --egress: every proxy receives every policy.
   */
  readonly egress?: number | 'all';
  /**
   * Worker threads the simulated proxies are spread over (0: all in this thread). Default: one
   * per core, since real proxies decode in parallel in their own processes.
   */
  readonly workers?: number;
  readonly log?: (line: string) => void;
}

export interface ConvergenceResult {
  readonly proxies: number;
  readonly applies: number;
  readonly policies: number;
  readonly egress: number | 'all';
  /** Stored -> all acknowledged, as the control server measures it (median / worst). */
  readonly median_ms: number;
  readonly worst_ms: number;
  /** `pillion apply` sent -> every simulated proxy has sent its ack, seen by the clients. */
  readonly client_median_ms: number;
  readonly client_worst_ms: number;
  /** Stored -> written to every connection: the control server's own share (median). */
  readonly sent_median_ms: number;
  /** Resident memory of the control server process with all proxies connected. */
  readonly rss_mb: number;
  readonly rss_idle_mb: number;
}

function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'bin', 'pillion.js'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find bin/pillion.js above ' + __dirname);
    dir = up;
  }
  return dir;
}

function samplePolicy(i: number, timeoutMs: number): Record<string, unknown> {
  return {
    apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: `svc-${i}` },
    spec: {
      service: `svc-${i}`,
      endpoints: [`10.0.${i >> 8}.${i & 255}:8080`, `10.1.${i >> 8}.${i & 255}:8080`],
      timeout: `${timeoutMs}ms`,
      retries: { attempts: 2, perTryTimeout: '1s', on: ['connect-failure', 'reset', 'gateway-error', '503'] },
      circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, windowSeconds: 10, resetTimeout: '10s', maxConcurrent: 1024 },
      rateLimit: { requestsPerSecond: 100, burst: 100, key: 'none', scope: 'local' },
      routes: [{ match: { pathPrefix: '/admin', methods: ['POST', 'PUT'] }, rateLimit: { requestsPerSecond: 5 }, timeout: '1s' }],
    },
  };
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return Math.round((kb / 1024) * 10) / 10;
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2; };
const round = (x: number) => Math.round(x * 10) / 10;

/** Wall-clock milliseconds with sub-ms precision, comparable across worker threads. */
const now = () => performance.timeOrigin + performance.now();

interface FleetSpec {
  readonly wsUrl: string;
  readonly token: string;
  readonly from: number;
  readonly to: number;
  readonly nPolicies: number;
  readonly egress: number | 'all';
}

interface Fleet {
  /** Resolves with the time (now()) at which this fleet's last proxy acknowledged `version`. */
  acked(version: number): Promise<number>;
  close(): Promise<void>;
}

/** Simulated proxies [from, to): hello, then decode every pushed version and acknowledge it. */
async function startFleet(spec: FleetSpec): Promise<Fleet> {
  const count = spec.to - spec.from;
  const acks = new Map<number, { n: number; last: number }>();
  const waiters = new Map<number, (at: number) => void>();
  const sockets: WebSocket[] = [];
  const connectOne = (i: number) => new Promise<void>((resolve, reject) => {
    const ws = new WebSocket(spec.wsUrl, { headers: { authorization: `Bearer ${spec.token}` }, perMessageDeflate: false });
    sockets.push(ws);
    let first = true;
    const service = i % spec.nPolicies;
    const hello = {
      type: 'hello', protocol: PROTOCOL_VERSION, proxyId: `bench-${i}`, service: `svc-${service}`,
      ...(spec.egress === 'all' ? {} : { egress: Array.from({ length: spec.egress as number }, (_, k) => `svc-${(service + k + 1) % spec.nPolicies}`) }),
    };
    ws.on('open', () => ws.send(JSON.stringify(hello)));
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.type !== 'config') return;
      decodePolicyObjects(msg.documents); // what a real proxy does before it swaps a version in
      ws.send(JSON.stringify({ type: 'ack', version: msg.version }));
      const a = acks.get(msg.version) ?? { n: 0, last: 0 };
      a.n++;
      a.last = now();
      acks.set(msg.version, a);
      if (a.n === count) waiters.get(msg.version)?.(a.last);
      if (first) { first = false; resolve(); }
    });
    ws.once('error', reject);
  });
  for (let i = spec.from; i < spec.to; i += 100) {
    await Promise.all(Array.from({ length: Math.min(100, spec.to - i) }, (_, j) => connectOne(i + j)));
  }
  return {
    acked(version) {
      const a = acks.get(version);
      if (a && a.n >= count) return Promise.resolve(a.last);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`version ${version}: only ${acks.get(version)?.n ?? 0}/${count} acks after 30s`)), 30_000);
        waiters.set(version, (at) => { clearTimeout(timer); waiters.delete(version); resolve(at); });
      });
    },
    async close() {
      for (const ws of sockets) ws.terminate();
    },
  };
}

/** The same fleet in a worker thread (this file, run with workerData). */
async function startWorkerFleet(spec: FleetSpec): Promise<Fleet> {
  const worker = new Worker(__filename, { workerData: { kind: WORKER_KIND, spec } });
  const waiters = new Map<number, { resolve: (at: number) => void; reject: (e: Error) => void }>();
  let failed: Error | undefined;
  await new Promise<void>((resolve, reject) => {
    worker.on('message', (m: { type: string; version?: number; at?: number; error?: string }) => {
      if (m.type === 'ready') resolve();
      else if (m.type === 'acked') waiters.get(m.version!)?.resolve(m.at!);
      else if (m.type === 'error') {
        failed = new Error(m.error);
        reject(failed);
        for (const w of waiters.values()) w.reject(failed);
      }
    });
    worker.once('error', reject);
  });
  return {
    acked(version) {
      if (failed) return Promise.reject(failed);
      return new Promise((resolve, reject) => {
        waiters.set(version, { resolve: (at) => { waiters.delete(version); resolve(at); }, reject });
        worker.postMessage({ type: 'wait', version });
      });
    },
    async close() {
      await worker.terminate();
    },
  };
}

const WORKER_KIND = 'pillion-convergence-fleet';
if (!isMainThread && (workerData as { kind?: string } | null)?.kind === WORKER_KIND) {
  startFleet((workerData as { spec: FleetSpec }).spec).then((fleet) => {
    parentPort!.on('message', (m: { type: string; version: number }) => {
      if (m.type === 'wait') fleet.acked(m.version).then(
        (at) => parentPort!.postMessage({ type: 'acked', version: m.version, at }),
        (err: Error) => parentPort!.postMessage({ type: 'error', error: err.message }),
      );
    });
    parentPort!.postMessage({ type: 'ready' });
  }, (err: Error) => parentPort!.postMessage({ type: 'error', error: err.message }));
}

export async function runConvergenceBench(opts: ConvergenceOptions): Promise<ConvergenceResult> {
  const log = opts.log ?? (() => {});
  const nPolicies = opts.policies ?? 20;
  const egress = opts.egress ?? 2;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-bench-control-'));
  const child: ChildProcess = spawn(process.execPath, [path.join(repoRoot(), 'bin', 'pillion.js'), 'control', '--port', '0', '--host', '127.0.0.1', '--data', dataDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let closeFleets: (() => Promise<unknown>) | undefined;
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`control server did not start: ${buf}`)), 15_000);
      child.stderr!.on('data', (d) => {
        buf += d;
        const m = /"msg":"control server listening".*?"url":"([^"]+)"/.exec(buf);
        if (m) { clearTimeout(timer); resolve(m[1]!); }
      });
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`control server exited ${code}: ${buf}`)); });
    });
    child.stderr!.resume();
    const admin = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const proxyToken = fs.readFileSync(path.join(dataDir, 'proxy.token'), 'utf8').trim();
    const call = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(url + p, { method, headers: { authorization: `Bearer ${admin}` }, body: body === undefined ? undefined : JSON.stringify(body) });
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
      return (await res.json()) as any;
    };
    await call('POST', '/v1/apply', { documents: Array.from({ length: nPolicies }, (_, i) => samplePolicy(i, 3000)) });
    const rssIdle = rssMb(child.pid!);

    // The simulated proxies, split over worker threads as real proxies are separate processes.
    const wsUrl = url.replace(/^http/, 'ws') + SUBSCRIBE_PATH;
    const nWorkers = Math.max(0, Math.min(opts.workers ?? os.availableParallelism(), opts.proxies));
    const fleets: Fleet[] = [];
    if (nWorkers === 0) fleets.push(await startFleet({ wsUrl, token: proxyToken, from: 0, to: opts.proxies, nPolicies, egress }));
    else {
      const per = Math.ceil(opts.proxies / nWorkers);
      for (let w = 0; w < nWorkers; w++) {
        fleets.push(await startWorkerFleet({ wsUrl, token: proxyToken, from: w * per, to: Math.min(opts.proxies, (w + 1) * per), nPolicies, egress }));
      }
    }
    closeFleets = () => Promise.all(fleets.map((f) => f.close()));
    log(`${opts.proxies} proxies connected and synced${nWorkers ? ` (${nWorkers} worker threads)` : ''}`);

    const server: number[] = [], client: number[] = [], sent: number[] = [];
    for (let a = 0; a < opts.applies; a++) {
      const changed = samplePolicy(a % nPolicies, 3000 + a + 1);
      const t0 = now();
      const { version } = await call('POST', '/v1/apply', { documents: [changed] });
      const lastAckAt = Math.max(...(await Promise.all(fleets.map((f) => f.acked(version)))));
      client.push(lastAckAt - t0);
      // The server counts the last ack when it reads it; poll briefly for its record.
      let conv: any;
      for (let k = 0; k < 200; k++) {
        conv = (await call('GET', '/v1/status')).convergence;
        if (conv?.version === version) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      if (conv?.version !== version || conv.proxies !== opts.proxies) throw new Error(`server did not record convergence of version ${version}: ${JSON.stringify(conv)}`);
      server.push(conv.storedToAckedMs);
      sent.push(conv.storedToSentMs ?? NaN);
      log(`apply ${a + 1}/${opts.applies}: version ${version} stored -> sent ${round(conv.storedToSentMs)} ms -> ${opts.proxies} acks ${round(conv.storedToAckedMs)} ms (client saw ${round(lastAckAt - t0)} ms)`);
    }
    const rss = rssMb(child.pid!);
    return {
      proxies: opts.proxies, applies: opts.applies, policies: nPolicies, egress,
      median_ms: round(median(server)), worst_ms: round(Math.max(...server)),
      client_median_ms: round(median(client)), client_worst_ms: round(Math.max(...client)), sent_median_ms: round(median(sent)),
      rss_mb: rss, rss_idle_mb: rssIdle,
    };
  } finally {
    await closeFleets?.();
    child.kill('SIGTERM');
    await new Promise<void>((r) => { if (child.exitCode !== null) r(); else { child.once('exit', () => r()); setTimeout(() => { child.kill('SIGKILL'); r(); }, 3000).unref(); } });
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (require.main === module && isMainThread) {
  (async () => {
    const applies = Number(process.env.APPLIES ?? 20);
    for (const egress of [2, 'all'] as const) {
      for (const proxies of [100, 1000]) {
        const workers = process.env.WORKERS === undefined ? undefined : Number(process.env.WORKERS);
        const r = await runConvergenceBench({ proxies, applies, egress, workers, log: (l) => process.stderr.write(`${l}\n`) });
        process.stdout.write(`${JSON.stringify(r)}\n`);
      }
    }
  })().catch((err) => {
    process.stderr.write(`convergence bench failed: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
