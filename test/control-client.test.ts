// The proxy's control client against a real control server: apply + ACK, reject + NACK with
// the previous version kept, the on-disk cache, reconnection to the latest version, backoff.
import t from 'tap';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startControlServer, ControlServer, VersionStore } from '../control';
import { startControlClient, readCachedConfig, ControlClient } from '../proxy/control-client';
import { createProxyMetrics, ProxyMetrics } from '../proxy/observability/metrics';
import { silentLogger } from '../proxy/runtime/logger';
import { decodePolicyObjects, TrafficPolicy } from '../proxy/config';

const policy = (name: string, service: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name }, spec: { service, ...extra },
});

function tmp(t: Tap.Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-cc-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function until<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 15));
  }
}

async function apply(s: ControlServer, token: string, documents: unknown[]) {
  const res = await fetch(`${s.url}/v1/apply`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ documents }) });
  return (await res.json()) as { version: number };
}

async function status(s: ControlServer, token: string) {
  const res = await fetch(`${s.url}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
  return (await res.json()) as { version: number; proxies: any[] };
}

async function gauge(m: ProxyMetrics): Promise<number> {
  return (await m.controlConnected.get()).values[0]?.value ?? -1;
}

/** A stand-in for the proxy: decodes with the real decoder, can be told to refuse a version. */
function fakeProxy() {
  const state = { inForce: undefined as { version: number; policies: TrafficPolicy[] } | undefined, applyCalls: 0, refuse: new Set<number>() };
  const applyFn = async (version: number, documents: readonly unknown[]) => {
    state.applyCalls++;
    const policies = decodePolicyObjects(documents);
    if (state.refuse.has(version)) throw new Error(`cannot build version ${version}: port in use`);
    state.inForce = { version, policies };
  };
  return { state, applyFn };
}

t.test('applies, acknowledges, caches (0600), rejects with the reason and keeps the previous version', async (t) => {
  const dir = tmp(t);
  const s = await startControlServer({ port: 0, host: '127.0.0.1', dataDir: path.join(dir, 'data'), logger: silentLogger });
  t.teardown(() => s.close());
  const admin = fs.readFileSync(s.adminTokenFile, 'utf8').trim();
  const token = fs.readFileSync(s.proxyTokenFile, 'utf8').trim();
  await apply(s, admin, [policy('a', 'a', { timeout: '2s' })]);
  const metrics = createProxyMetrics();
  const p = fakeProxy();
  const cacheDir = path.join(dir, 'cache');
  const client = startControlClient({
    url: s.url, token, caFile: undefined, service: 'a', proxyId: 'a-1', egress: undefined, cacheDir, metrics, logger: silentLogger, apply: p.applyFn,
  });
  t.teardown(() => client.stop());
  await until(() => p.state.inForce?.version === 1, 'version 1 applied');
  t.equal(p.state.inForce!.policies[0]!.timeoutMs, 2000, 'the pushed documents were decoded');
  t.equal(await gauge(metrics), 1, 'pillion_control_connected is 1');
  await until(async () => (await status(s, admin)).proxies[0]?.state === 'SYNCED', 'SYNCED');
  await until(() => readCachedConfig(cacheDir)?.version === 1, 'the cache to hold version 1');
  t.equal(fs.statSync(path.join(cacheDir, 'config.json')).mode & 0o777, 0o600, 'the cache is readable by the proxy only');
  t.same(readCachedConfig(cacheDir)!.documents, [policy('a', 'a', { timeout: '2s' })]);

  // A version the proxy cannot apply: NACK with the reason, the previous one stays in force.
  p.state.refuse.add(2);
  await apply(s, admin, [policy('b', 'b')]);
  const st = await until(async () => { const b = await status(s, admin); return b.proxies[0]?.state === 'NACKED' ? b : undefined; }, 'NACKED');
  t.equal(st.proxies[0].reason, 'cannot build version 2: port in use');
  t.equal(st.proxies[0].ackedVersion, 1);
  t.equal(p.state.inForce!.version, 1, 'version 1 stays in force');
  t.equal(client.state().version, 1);
  t.equal(readCachedConfig(cacheDir)!.version, 1, 'the cache keeps the last good version');
  t.match(await metrics.registry.getSingleMetricAsString('pillion_config_errors_total'), /source="control"} 1/);

  // A later valid version acknowledges again.
  await apply(s, admin, [policy('b', 'b', { timeout: '1s' })]);
  await until(async () => (await status(s, admin)).proxies[0]?.state === 'SYNCED', 'SYNCED again');
  t.equal(p.state.inForce!.version, 3);
});

t.test('a ConfigError NACK carries the decoder\'s messages', async (t) => {
  const dir = tmp(t);
  const s = await startControlServer({ port: 0, host: '127.0.0.1', dataDir: path.join(dir, 'data'), logger: silentLogger });
  t.teardown(() => s.close());
  const admin = fs.readFileSync(s.adminTokenFile, 'utf8').trim();
  await apply(s, admin, [policy('a', 'a')]);
  const client = startControlClient({
    url: s.url, token: fs.readFileSync(s.proxyTokenFile, 'utf8').trim(), caFile: undefined, service: 'a', proxyId: 'old-proxy',
    egress: undefined, cacheDir: path.join(dir, 'cache'), metrics: createProxyMetrics(), logger: silentLogger,
    // An older proxy whose decoder does not know a field the server accepted.
    apply: async (_v, docs) => { decodePolicyObjects(docs.map((d: any) => ({ ...d, spec: { ...d.spec, shiny: true } }))); },
  });
  t.teardown(() => client.stop());
  const st = await until(async () => { const b = await status(s, admin); return b.proxies[0]?.state === 'NACKED' ? b : undefined; }, 'NACKED');
  t.equal(st.proxies[0].reason, 'a: spec.shiny: unknown field (allowed: service, endpoints, timeout, retries, circuitBreaker, rateLimit, routes)');
});

t.test('keeps serving when the control server goes away, reconnects, gets the latest version; restarts from the cache', async (t) => {
  const dir = tmp(t);
  const dataDir = path.join(dir, 'data');
  let s = await startControlServer({ port: 0, host: '127.0.0.1', dataDir, logger: silentLogger, heartbeatMs: 200 });
  const port = s.port;
  t.teardown(() => s.close());
  const admin = fs.readFileSync(s.adminTokenFile, 'utf8').trim();
  const token = fs.readFileSync(s.proxyTokenFile, 'utf8').trim();
  await apply(s, admin, [policy('a', 'a')]);
  const metrics = createProxyMetrics();
  const p = fakeProxy();
  const cacheDir = path.join(dir, 'cache');
  const opts = {
    url: s.url, token, caFile: undefined, service: 'a', proxyId: 'a-1', egress: undefined, cacheDir, metrics, logger: silentLogger,
    reconnect: { initialMs: 20, maxMs: 200 },
  };
  const client: ControlClient = startControlClient({ ...opts, apply: p.applyFn });
  t.teardown(() => client.stop());
  await until(() => p.state.inForce?.version === 1 && readCachedConfig(cacheDir)?.version === 1, 'version 1 applied and cached');

  await s.close();
  await until(async () => (await gauge(metrics)) === 0, 'pillion_control_connected to drop to 0');
  t.equal(p.state.inForce!.version, 1, 'the config in force is kept');
  // While it is away, a version is written to its store (as another replica or a restore would).
  const store = VersionStore.open(dataDir);
  store.apply([policy('b', 'b')]);
  store.close();
  s = await startControlServer({ port, host: '127.0.0.1', dataDir, logger: silentLogger });
  await until(() => p.state.inForce?.version === 2, 'the latest version after reconnecting');
  t.equal(await gauge(metrics), 1);
  const calls = p.state.applyCalls;
  await client.stop();

  // A restart while the control server is down starts from the cache...
  await s.close();
  t.equal(readCachedConfig(cacheDir)?.version, 2);
  const p2 = fakeProxy();
  const again = startControlClient({ ...opts, metrics: createProxyMetrics(), apply: p2.applyFn });
  t.teardown(() => again.stop());
  t.equal(again.state().version, 2, 'the cached version is known before any connection');
  // ...and an unchanged version pushed on reconnect is acknowledged without being rebuilt.
  s = await startControlServer({ port, host: '127.0.0.1', dataDir, logger: silentLogger });
  await until(async () => (await status(s, admin)).proxies[0]?.state === 'SYNCED', 'SYNCED after the restart');
  t.equal(p2.state.applyCalls, 0, 'the same version was not applied twice');
  t.ok(calls >= 2);
});

t.test('reconnects with exponential backoff, not in a tight loop', async (t) => {
  let attempts = 0;
  const sink = net.createServer((sock) => { attempts++; sock.destroy(); });
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => sink.close(() => r())));
  const port = (sink.address() as net.AddressInfo).port;
  const client = startControlClient({
    url: `http://127.0.0.1:${port}`, token: 'x'.repeat(20), caFile: undefined, service: 'a', proxyId: 'a-1', egress: undefined,
    cacheDir: tmp(t), metrics: createProxyMetrics(), logger: silentLogger, apply: async () => {},
    reconnect: { initialMs: 50, maxMs: 400 }, random: () => 1,
  });
  await new Promise((r) => setTimeout(r, 1200));
  await client.stop();
  // Delays 50, 100, 200, 400, 400 ms: about 6 attempts in 1.2 s; without backoff, hundreds.
  t.ok(attempts >= 3 && attempts <= 9, `attempts in 1.2s: ${attempts}`);
});
