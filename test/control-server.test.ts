// The control server in-process: store semantics, tokens, admin API auth, push with ack/nack
// and the SYNCED / STALE / NACKED states, scoping, TLS.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import { startControlServer, ControlServer, VersionStore } from '../control';
import { silentLogger, Logger } from '../proxy/runtime/logger';
import { ConfigError } from '../proxy/config';

const policy = (name: string, service: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name }, spec: { service, ...extra },
});

function tmp(t: Tap.Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-control-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A logger that remembers every line, so tests can check that no token was written. */
function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (msg: string, f?: Record<string, unknown>) => { lines.push(JSON.stringify({ level, msg, ...f })); };
  return { lines, info: rec('info'), warn: rec('warn'), error: rec('error') };
}

async function start(t: Tap.Test, extra: Partial<Parameters<typeof startControlServer>[0]> = {}): Promise<ControlServer & { admin: string; proxy: string }> {
  const dataDir = extra.dataDir ?? tmp(t);
  const s = await startControlServer({ port: 0, host: '127.0.0.1', dataDir, logger: silentLogger, ...extra });
  t.teardown(() => s.close());
  return Object.assign(s, { admin: fs.readFileSync(s.adminTokenFile, 'utf8').trim(), proxy: fs.readFileSync(s.proxyTokenFile, 'utf8').trim() });
}

async function api(s: { url: string }, token: string | undefined, method: string, p: string, body?: unknown) {
  const res = await fetch(s.url + p, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** A hand-driven proxy: the test decides what to answer to each pushed version. */
class FakeProxy {
  readonly messages: any[] = [];
  private waiters: (() => void)[] = [];
  constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => { this.messages.push(JSON.parse(d.toString())); this.waiters.splice(0).forEach((w) => w()); });
  }
  static async connect(url: string, token: string, hello: Record<string, unknown>): Promise<FakeProxy> {
    const ws = new WebSocket(url.replace(/^http/, 'ws') + '/v1/subscribe', { headers: { authorization: `Bearer ${token}` } });
    const p = new FakeProxy(ws);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    ws.send(JSON.stringify({ type: 'hello', protocol: 1, ...hello }));
    return p;
  }
  async next(pred: (m: any) => boolean = () => true): Promise<any> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const m = this.messages.find(pred);
      if (m) { this.messages.splice(this.messages.indexOf(m), 1); return m; }
      if (Date.now() > deadline) throw new Error('no matching message within 5s');
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 100); });
    }
  }
  send(m: unknown) { this.ws.send(JSON.stringify(m)); }
  close() { this.ws.terminate(); }
}

async function until<T>(fn: () => Promise<T | undefined> | T | undefined, what: string): Promise<T> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

t.test('store: each change is a new version holding the whole set; rollback copies; survives reopen', async (t) => {
  const dir = tmp(t);
  const store = VersionStore.open(dir);
  t.equal(store.apply([policy('a', 'a')]).version, 1);
  t.same(store.apply([policy('a', 'a')]), { version: 1, changed: false, created: [], configured: [], unchanged: ['a'] }, 'same content: no new version');
  const r = store.apply([policy('b', 'b'), policy('a', 'a', { timeout: '2s' })]);
  t.same([r.version, r.created, r.configured], [2, ['b'], ['a']]);
  t.equal(store.delete('b'), 3);
  t.throws(() => store.delete('b'), { code: 'PILLION_NOT_FOUND' });
  t.same(store.rollback(), { version: 4, to: 2 }, 'default: the version before the current one');
  t.same(store.current().documents.map((d: any) => d.metadata.name), ['a', 'b']);
  t.same(store.rollback(1), { version: 5, to: 1 });
  store.close();
  const again = VersionStore.open(dir);
  t.teardown(() => again.close());
  t.equal(again.current().version, 5);
  t.same(again.history().map((v) => [v.version, v.action]), [[5, 'rollback'], [4, 'rollback'], [3, 'delete'], [2, 'apply'], [1, 'apply']]);
  t.same(again.get(2).documents.map((d: any) => d.spec.timeout ?? null), ['2s', null]);
});

t.test('store: invalid documents are refused with the decoder\'s messages and create no version', async (t) => {
  const store = VersionStore.open(tmp(t));
  t.teardown(() => store.close());
  store.apply([policy('a', 'a')]);
  const bad = policy('b', 'b', { timeout: 'soon' });
  let issues: readonly string[] = [];
  try { store.apply([bad]); } catch (err) { t.type(err, ConfigError); issues = (err as ConfigError).issues; }
  t.same(issues, ['b: spec.timeout: must be a duration such as 500ms, 3s or 1m (got "soon")']);
  t.throws(() => store.apply([policy('c', 'a')]), { issues: ['c: spec.service: service "a" is already governed by policy "a"'] }, 'conflicts with the stored set are refused too');
  t.equal(store.current().version, 1);
  t.equal(store.history().length, 1);
});

t.test('store: a second control server on the same data directory is refused', async (t) => {
  const dir = tmp(t);
  const store = VersionStore.open(dir);
  t.teardown(() => store.close());
  t.throws(() => VersionStore.open(dir), { code: 'PILLION_STORE_LOCKED' });
});

t.test('tokens: generated once with mode 0600, required on every admin route and the subscription, never logged', async (t) => {
  const dataDir = tmp(t);
  const logger = recordingLogger();
  const s = await start(t, { dataDir, logger });
  for (const f of ['admin.token', 'proxy.token']) t.equal(fs.statSync(path.join(dataDir, f)).mode & 0o777, 0o600, `${f} is 0600`);
  t.not(s.admin, s.proxy);
  for (const token of [undefined, 'wrong-token-wrong-token', s.proxy]) {
    for (const [method, p, body] of [['GET', '/v1/policies'], ['GET', '/v1/status'], ['GET', '/v1/history'], ['POST', '/v1/apply', { documents: [policy('a', 'a')] }], ['DELETE', '/v1/policies/a'], ['POST', '/v1/rollback', {}]] as const) {
      const r = await api(s, token, method, p, body);
      t.equal(r.status, 401, `${method} ${p} with ${token === undefined ? 'no token' : 'a wrong token'}`);
      t.same(r.body, { error: 'missing or invalid bearer token', code: 'PILLION_UNAUTHORIZED' });
    }
  }
  t.equal((await api(s, s.admin, 'GET', '/v1/history')).body.versions.length, 0, 'nothing was written by refused requests');
  const refused = await new Promise<number>((resolve) => {
    const ws = new WebSocket(s.url.replace('http', 'ws') + '/v1/subscribe', { headers: { authorization: `Bearer ${s.admin}` } });
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode ?? 0); ws.terminate(); });
    ws.on('open', () => { resolve(101); ws.terminate(); });
    ws.on('error', () => {});
  });
  t.equal(refused, 401, 'the admin token does not subscribe; only the proxy token does');
  t.equal((await api(s, s.admin, 'POST', '/v1/apply', { documents: [policy('a', 'a')] })).status, 200);
  await s.close();
  // A restart keeps the tokens it generated.
  const again = await start(t, { dataDir, logger });
  t.equal(again.admin, s.admin);
  t.equal((await api(again, s.admin, 'GET', '/v1/policies')).body.version, 1);
  const log = logger.lines.join('\n');
  t.notMatch(log, s.admin, 'the admin token never appears in the log');
  t.notMatch(log, s.proxy, 'the proxy token never appears in the log');
  t.match(log, 'generated the admin token');
});

t.test('tokens: --admin-token-file/--proxy-token-file are used instead of generated ones', async (t) => {
  const dir = tmp(t);
  fs.writeFileSync(path.join(dir, 'a'), 'given-admin-token-0123456789\n');
  fs.writeFileSync(path.join(dir, 'p'), 'given-proxy-token-0123456789\n');
  const s = await start(t, { dataDir: path.join(dir, 'data'), adminTokenFile: path.join(dir, 'a'), proxyTokenFile: path.join(dir, 'p') });
  t.notOk(fs.existsSync(path.join(dir, 'data', 'admin.token')));
  t.equal((await api(s, 'given-admin-token-0123456789', 'GET', '/v1/status')).status, 200);
});

t.test('admin API: apply validates with the decoder, get/delete/history/rollback', async (t) => {
  const s = await start(t);
  const bad = await api(s, s.admin, 'POST', '/v1/apply', { documents: [policy('x', 'x', { retries: { attempts: 99 } })] });
  t.equal(bad.status, 400);
  t.same(bad.body.issues, ['x: spec.retries.attempts: must be an integer between 0 and 10 (got 99)']);
  t.equal((await api(s, s.admin, 'GET', '/v1/history')).body.versions.length, 0, 'a refused apply creates no version');
  t.equal((await api(s, s.admin, 'POST', '/v1/apply', {})).status, 400);
  const ok = await api(s, s.admin, 'POST', '/v1/apply', { documents: [policy('a', 'a'), policy('b', 'b')] });
  t.same(ok.body, { version: 1, changed: true, created: ['a', 'b'], configured: [], unchanged: [] });
  t.same((await api(s, s.admin, 'GET', '/v1/policies/b')).body, { version: 1, item: policy('b', 'b') });
  t.equal((await api(s, s.admin, 'GET', '/v1/policies/zz')).status, 404);
  t.same((await api(s, s.admin, 'DELETE', '/v1/policies/b')).body, { version: 2, deleted: 'b' });
  t.same((await api(s, s.admin, 'POST', '/v1/rollback', { to: 1 })).body, { version: 3, to: 1 });
  t.equal((await api(s, s.admin, 'POST', '/v1/rollback', { to: 'x' })).status, 400);
  const h = (await api(s, s.admin, 'GET', '/v1/history')).body;
  t.same(h.versions.map((v: any) => v.version), [3, 2, 1]);
  t.same((await api(s, s.admin, 'GET', '/v1/history/2')).body.documents, [policy('a', 'a')]);
  t.equal((await api(s, s.admin, 'GET', '/v1/nothing')).status, 404);
});

t.test('push: current version on hello, each new version scoped, ack -> SYNCED, nack -> NACKED with reason', async (t) => {
  const s = await start(t);
  await api(s, s.admin, 'POST', '/v1/apply', { documents: [policy('a', 'a'), policy('b', 'b'), policy('c', 'c')] });
  const all = await FakeProxy.connect(s.url, s.proxy, { proxyId: 'all-1', service: 'a' });
  const scoped = await FakeProxy.connect(s.url, s.proxy, { proxyId: 'scoped-1', service: 'a', egress: ['c'] });
  t.teardown(() => { all.close(); scoped.close(); });
  const m1 = await all.next();
  t.equal(m1.type, 'config');
  t.equal(m1.version, 1);
  t.same(m1.documents.map((d: any) => d.metadata.name), ['a', 'b', 'c'], 'without egress: every policy');
  const s1 = await scoped.next();
  t.same(s1.documents.map((d: any) => d.metadata.name), ['a', 'c'], 'with egress: its own service and its destinations');

  let st = (await api(s, s.admin, 'GET', '/v1/status')).body;
  t.same(st.proxies.map((p: any) => p.state), ['STALE', 'STALE'], 'sent but not acknowledged');
  all.send({ type: 'ack', version: 1 });
  scoped.send({ type: 'ack', version: 1 });
  await until(async () => (await api(s, s.admin, 'GET', '/v1/status')).body.proxies.every((p: any) => p.state === 'SYNCED'), 'SYNCED');

  await api(s, s.admin, 'POST', '/v1/apply', { documents: [policy('b', 'b', { timeout: '1s' })] });
  const m2 = await all.next();
  t.equal(m2.version, 2, 'a new version is pushed without being asked for');
  const s2 = await scoped.next();
  t.same(s2.documents.map((d: any) => d.metadata.name), ['a', 'c'], 'an out-of-scope change still moves the version');
  all.send({ type: 'nack', version: 2, reason: 'b: spec.timeout: not today' });
  scoped.send({ type: 'ack', version: 2 });
  st = await until(async () => {
    const b = (await api(s, s.admin, 'GET', '/v1/status')).body;
    return b.proxies.find((p: any) => p.proxyId === 'all-1').state === 'NACKED' && b.proxies.find((p: any) => p.proxyId === 'scoped-1').state === 'SYNCED' ? b : undefined;
  }, 'NACKED');
  const row = st.proxies.find((p: any) => p.proxyId === 'all-1');
  t.same([row.ackedVersion, row.sentVersion, row.reason], [1, 2, 'b: spec.timeout: not today']);

  await api(s, s.admin, 'POST', '/v1/rollback', {});
  const m3 = await all.next();
  t.equal(m3.version, 3);
  all.send({ type: 'ack', version: 3 });
  scoped.send({ type: 'ack', version: 3 });
  st = await until(async () => {
    const b = (await api(s, s.admin, 'GET', '/v1/status')).body;
    return b.proxies.every((p: any) => p.state === 'SYNCED') && b.convergence?.version === 3 ? b : undefined;
  }, 'SYNCED after a later ack');
  t.equal(st.convergence.proxies, 2, 'convergence counts the proxies that acknowledged');
  t.ok(st.convergence.storedToAckedMs >= 0);
});

t.test('push: bad hellos are refused with a reason; a second connection with the same id replaces the first', async (t) => {
  const s = await start(t);
  for (const [hello, reason] of [
    [{ proxyId: 'p1', service: 'Not A Label' }, /hello.service/],
    [{ proxyId: '', service: 'a' }, /hello.proxyId/],
    [{ proxyId: 'p1', service: 'a', egress: 'b' }, /hello.egress/],
  ] as const) {
    const p = await FakeProxy.connect(s.url, s.proxy, hello);
    t.teardown(() => p.close());
    const m = await p.next();
    t.equal(m.type, 'error');
    t.match(m.reason, reason);
  }
  const first = await FakeProxy.connect(s.url, s.proxy, { proxyId: 'same', service: 'a' });
  await first.next();
  const closed = new Promise<number>((r) => first.ws.once('close', (code) => r(code)));
  const second = await FakeProxy.connect(s.url, s.proxy, { proxyId: 'same', service: 'a' });
  t.teardown(() => second.close());
  await second.next();
  t.equal(await closed, 4409);
  const st = (await api(s, s.admin, 'GET', '/v1/status')).body;
  t.equal(st.proxies.length, 1);
});

t.test('TLS: --tls-cert/--tls-key serve HTTPS and WSS; a client given the CA connects', async (t) => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    t.skip('openssl CLI not installed (CI has it)');
    return;
  }
  const dir = tmp(t);
  const cert = path.join(dir, 'cert.pem'), key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const s = await start(t, { tlsCert: fs.readFileSync(cert), tlsKey: fs.readFileSync(key) });
  t.match(s.url, /^https:\/\//);
  const { startControlClient } = await import('../proxy/control-client');
  const { createProxyMetrics } = await import('../proxy/observability/metrics');
  const applied: number[] = [];
  const client = startControlClient({
    url: s.url, token: s.proxy, caFile: cert, service: 'a', proxyId: 'tls-1', egress: undefined, cacheDir: path.join(dir, 'cache'),
    metrics: createProxyMetrics(), logger: silentLogger, apply: async (v) => { applied.push(v); },
  });
  t.teardown(() => client.stop());
  await until(() => client.state().connected && applied.length > 0, 'a TLS subscription');
  const untrusted = await new Promise<string>((resolve) => {
    const ws = new WebSocket(s.url.replace('https', 'wss') + '/v1/subscribe', { headers: { authorization: `Bearer ${s.proxy}` } });
    ws.on('error', (err) => resolve(err.message));
    ws.on('open', () => { resolve('open'); ws.terminate(); });
  });
  t.match(untrusted, /self.signed|certificate/i, 'without the CA the certificate is not trusted');
});

t.test('dashboard: GET / is a page without data, behind a strict CSP; the data it shows needs the admin token', async (t) => {
  const s = await start(t);
  await api(s, s.admin, 'POST', '/v1/apply', { documents: [policy('secret-service', 'secret-service')] });
  const page = await fetch(`${s.url}/`);
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), 'text/html');
  t.match(page.headers.get('content-security-policy'), "script-src 'self'");
  const html = await page.text();
  t.match(html, '<script src="/dashboard.js"></script>');
  t.notMatch(html, 'secret-service', 'the page itself holds no configuration');
  const js = await fetch(`${s.url}/dashboard.js`);
  t.match(await js.text(), "api('/v1/status')");
  t.equal((await fetch(`${s.url}/v1/status`)).status, 401);
});
