// A real `pillion proxy --control` against the control server: it runs what is pushed, keeps
// serving when the control server goes away, restarts from its cache while it is still away,
// and picks up the latest version when it comes back.
import t from 'tap';
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { startControlServer, ControlServer } from '../control';
import { silentLogger } from '../proxy/runtime/logger';

const BIN = path.join(__dirname, '..', 'bin', 'pillion.js');
const policy = (rps: number) => ({
  apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'web' },
  spec: { service: 'web', rateLimit: { requestsPerSecond: rps, burst: rps } },
});

async function until<T>(fn: () => Promise<T | undefined | false>, what: string, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) { last = err; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} ${last ? `(${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startProxy(args: string[]): Promise<{ child: ChildProcess; admin: number; inbound: number; log: () => string }> {
  const child = spawn(process.execPath, [BIN, 'proxy', ...args, '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0', '--drain-timeout', '200ms'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OTEL_TRACES_SAMPLER: 'always_off' } });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start: ${log}`)), 15_000);
    const iv = setInterval(() => {
      const m = /"msg":"listening"[^\n]*"inbound":(\d+),"outbound":\d+,"admin":(\d+)/.exec(log);
      if (m) { clearInterval(iv); clearTimeout(timer); resolve({ child, inbound: Number(m[1]), admin: Number(m[2]), log: () => log }); }
    }, 20);
    child.once('exit', (code) => { clearInterval(iv); clearTimeout(timer); reject(new Error(`proxy exited ${code}: ${log}`)); });
  });
}

async function getJson(port: number, p: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { status: res.status, text: await res.text() };
}

t.test('a sidecar subscribed to the control server', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-cp-'));
  const dataDir = path.join(dir, 'data'), cacheDir = path.join(dir, 'cache');
  const app = http.createServer((_req, res) => res.end('app\n'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  const appPort = (app.address() as AddressInfo).port;
  let control: ControlServer = await startControlServer({ port: 0, host: '127.0.0.1', dataDir, logger: silentLogger });
  const controlPort = control.port;
  const procs: ChildProcess[] = [];
  t.teardown(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await control.close();
    app.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const admin = fs.readFileSync(control.adminTokenFile, 'utf8').trim();
  const applyPolicy = async (rps: number) => {
    const res = await fetch(`${control.url}/v1/apply`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, body: JSON.stringify({ documents: [policy(rps)] }) });
    return ((await res.json()) as { version: number }).version;
  };
  t.equal(await applyPolicy(2), 1);
  const args = ['--service', 'web', '--proxy-id', 'web-1', '--control', control.url, '--token-file', control.proxyTokenFile, '--cache-dir', cacheDir, '--app', `127.0.0.1:${appPort}`];
  const dumpOf = async (port: number) => JSON.parse((await getJson(port, '/config_dump')).text);
  const connected = async (port: number) => /^pillion_control_connected (\d)$/m.exec((await getJson(port, '/stats/prometheus')).text)?.[1];

  let proxy = await startProxy(args);
  procs.push(proxy.child);
  await until(async () => (await dumpOf(proxy.admin)).version === 1, 'version 1 in /config_dump');
  const dump = await dumpOf(proxy.admin);
  t.equal(dump.source, 'control');
  t.equal(dump.policies[0].rateLimit.requestsPerSecond, 2);
  t.equal(await connected(proxy.admin), '1', 'pillion_control_connected 1');
  t.notMatch(JSON.stringify(dump), fs.readFileSync(control.proxyTokenFile, 'utf8').trim(), 'the token is not in config_dump');
  await until(async () => control.hub.status()[0]?.state === 'SYNCED', 'SYNCED');
  t.equal(fs.statSync(path.join(cacheDir, 'config.json')).mode & 0o777, 0o600);

  // A new version arrives without the proxy asking.
  t.equal(await applyPolicy(1000), 2);
  await until(async () => (await dumpOf(proxy.admin)).version === 2, 'version 2 pushed');

  // The control server goes away: the proxy keeps serving with version 2.
  await control.close();
  await until(async () => (await connected(proxy.admin)) === '0', 'pillion_control_connected 0').catch((e) => { t.comment(proxy.log()); throw e; });
  const served = await getJson(proxy.inbound, '/');
  t.same([served.status, served.text], [200, 'app\n'], 'still serving');
  t.equal((await dumpOf(proxy.admin)).version, 2);

  // Restarted while the control server is still down: it starts with the cached version.
  proxy.child.kill('SIGTERM');
  await new Promise((r) => proxy.child.once('exit', r));
  proxy = await startProxy(args);
  procs.push(proxy.child);
  await until(async () => (await getJson(proxy.admin, '/ready')).status === 200, 'ready from the cache');
  const cached = await dumpOf(proxy.admin);
  t.same([cached.version, cached.source, cached.policies[0].rateLimit.requestsPerSecond], [2, 'control', 1000], 'the last good version from the cache');
  t.equal(await connected(proxy.admin), '0');

  // The control server comes back (same port and data) with a newer version: the proxy gets it.
  control = await startControlServer({ port: controlPort, host: '127.0.0.1', dataDir, logger: silentLogger });
  t.equal(await applyPolicy(7), 3);
  await until(async () => (await dumpOf(proxy.admin)).version === 3, 'version 3 after reconnecting', 20_000);
  t.equal(await connected(proxy.admin), '1');
  await until(async () => control.hub.status()[0]?.state === 'SYNCED', 'SYNCED again');
  proxy.child.kill('SIGTERM');
  await new Promise((r) => proxy.child.once('exit', r));
});
