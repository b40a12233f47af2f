// The policies through a real proxy (startProxy) and a real upstream that counts its hits.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { decodePolicyText } from '../proxy/config';
import { startProxy, RunningProxy } from '../proxy';
import { silentLogger } from '../proxy/runtime/logger';
import { refusedPort } from './helpers/proxy';

interface Upstream { port: number; hits: number; bodies: string[]; respond: (req: http.IncomingMessage, res: http.ServerResponse) => void; close(): Promise<void> }

async function upstream(): Promise<Upstream> {
  const u = {
    port: 0, hits: 0, bodies: [] as string[],
    respond: (_req: http.IncomingMessage, res: http.ServerResponse) => { res.end('ok'); },
  } as Upstream;
  const server = http.createServer((req, res) => {
    u.hits++;
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => { u.bodies.push(Buffer.concat(chunks).toString()); u.respond(req, res); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as AddressInfo).port;
  u.close = () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
  return u;
}

function request(port: number, opts: { host?: string; path?: string; method?: string; body?: string } = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: opts.path ?? '/', method: opts.method ?? 'GET',
      headers: { host: opts.host ?? 'ratings', ...(opts.body !== undefined ? { 'content-length': Buffer.byteLength(opts.body) } : {}) },
      agent: false,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function proxyWith(yaml: string, service = 'frontend'): Promise<{ proxy: RunningProxy; log: Record<string, unknown>[] }> {
  const log: Record<string, unknown>[] = [];
  const accessLog = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) log.push(JSON.parse(line));
      cb();
    },
  });
  const proxy = await startProxy({
    service, inboundPort: 0, outboundPort: 0, adminPort: 0, logger: silentLogger, accessLog,
    app: undefined, initialSnapshot: { version: 1, source: 'file', policies: decodePolicyText(yaml) },
  });
  return { proxy, log };
}

const admin = async (proxy: RunningProxy, path: string) => {
  const r = await request(proxy.ports.admin, { path, host: '127.0.0.1' });
  return r.body;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('circuit breaker: opens on upstream 5xx, stops contacting it, probes after resetTimeout', async (t) => {
  const up = await upstream();
  up.respond = (_q, res) => { res.statusCode = 503; res.end('down'); };
  const { proxy } = await proxyWith(`
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec:
  service: ratings
  endpoints: [127.0.0.1:${up.port}]
  circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 5, windowSeconds: 10, resetTimeout: 400ms }
`);
  t.teardown(async () => { await proxy.close(); await up.close(); });
  const statuses: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await request(proxy.ports.outbound);
    statuses.push(`${r.status} ${r.headers['x-pillion-reason'] ?? 'upstream'}`);
  }
  t.equal(up.hits, 5, 'the upstream saw volumeThreshold requests, then none');
  t.same(statuses.slice(0, 5), Array(5).fill('503 upstream'));
  t.same(statuses.slice(5), Array(15).fill('503 circuit-open'));
  const clusters = JSON.parse(await admin(proxy, '/clusters')) as Array<Record<string, unknown>>;
  t.equal(clusters.find((c) => c.service === 'ratings')?.breaker, 'open', '/clusters shows the state');
  t.match(await admin(proxy, '/stats/prometheus'), /pillion_circuit_state\{service="ratings"\} 1/);

  await sleep(500);
  up.respond = (_q, res) => { res.end('back'); };
  const probe = await request(proxy.ports.outbound);
  t.equal(probe.status, 200, 'the probe went through and succeeded');
  t.equal(up.hits, 6);
  t.match(await admin(proxy, '/stats/prometheus'), /pillion_circuit_state\{service="ratings"\} 0/);
  for (let i = 0; i < 5; i++) t.equal((await request(proxy.ports.outbound)).status, 200);
});

t.test('maxConcurrent: 503 overflow beyond it', async (t) => {
  const up = await upstream();
  const held: http.ServerResponse[] = [];
  up.respond = (_q, res) => { held.push(res); };
  const { proxy } = await proxyWith(`
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec: { service: ratings, endpoints: [127.0.0.1:${up.port}], circuitBreaker: { maxConcurrent: 2 } }
`);
  t.teardown(async () => { await proxy.close(); await up.close(); });
  const a = request(proxy.ports.outbound), b = request(proxy.ports.outbound);
  for (let i = 0; i < 100 && held.length < 2; i++) await sleep(10);
  const c = await request(proxy.ports.outbound);
  t.equal(c.status, 503);
  t.equal(c.headers['x-pillion-reason'], 'overflow');
  up.respond = (_q, res) => { res.end('ok'); };
  held.forEach((r) => r.end('done'));
  t.same([(await a).status, (await b).status], [200, 200]);
  t.equal((await request(proxy.ports.outbound)).status, 200, 'slots are released');
  t.equal(up.hits, 3);
});

t.test('retries: 503 then 200, the small POST body replayed, attempt_count logged', async (t) => {
  const up = await upstream();
  let n = 0;
  up.respond = (_q, res) => { res.statusCode = n++ === 0 ? 503 : 200; res.end(`try ${n}`); };
  const { proxy, log } = await proxyWith(`
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec:
  service: ratings
  endpoints: [127.0.0.1:${up.port}]
  retries: { attempts: 2, perTryTimeout: 1s, on: [gateway-error] }
`);
  t.teardown(async () => { await proxy.close(); await up.close(); });
  const r = await request(proxy.ports.outbound, { method: 'POST', path: '/orders', body: 'hello body' });
  t.equal(r.status, 200);
  t.equal(r.body, 'try 2');
  t.same(up.bodies, ['hello body', 'hello body'], 'the body was sent again');
  n = 0;
  t.equal((await request(proxy.ports.outbound)).status, 200, 'GET without a body is retried too');
  t.equal(up.bodies[3], '');
  await sleep(50);
  t.equal(log.filter((l) => l.direction === 'outbound').map((l) => l.attempt_count).join(','), '2,2');
  t.match(await admin(proxy, '/stats/prometheus'), /pillion_retries_total\{service="ratings"\} 2/);
});

t.test('retries: connect failure to one endpoint goes to the next; a body over 64 KiB is not retried', async (t) => {
  const up = await upstream();
  const deadPort = await refusedPort();
  const { proxy } = await proxyWith(`
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec:
  service: ratings
  endpoints: [127.0.0.1:${deadPort}, 127.0.0.1:${up.port}]
  retries: { attempts: 1, on: [connect-failure] }
`);
  t.teardown(async () => { await proxy.close(); await up.close(); });
  for (let i = 0; i < 6; i++) t.equal((await request(proxy.ports.outbound)).status, 200, `request ${i}: never sees the dead endpoint`);
  const big = 'x'.repeat(64 * 1024 + 10);
  const results = [await request(proxy.ports.outbound, { method: 'POST', body: big }), await request(proxy.ports.outbound, { method: 'POST', body: big })];
  t.same(results.map((r) => r.status).sort(), [200, 503], 'the large body that hit the dead endpoint was not retried');
  t.equal(up.bodies.filter((b) => b.length === big.length).length, 1, 'the large body arrived whole once');
});

t.test('overall timeout bounds the retries: 504 upstream-timeout', async (t) => {
  const up = await upstream();
  up.respond = () => { /* never answers */ };
  const { proxy } = await proxyWith(`
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec:
  service: ratings
  endpoints: [127.0.0.1:${up.port}]
  timeout: 500ms
  retries: { attempts: 5, perTryTimeout: 200ms }
`);
  t.teardown(async () => { await proxy.close(); await up.close(); });
  const started = Date.now();
  const r = await request(proxy.ports.outbound);
  const took = Date.now() - started;
  t.equal(r.status, 504);
  t.equal(r.headers['x-pillion-reason'], 'upstream-timeout');
  t.ok(took >= 450 && took < 3000, `answered at the overall deadline (${took} ms)`);
  t.ok(up.hits >= 2 && up.hits <= 3, `per-try timeouts were retried until the deadline (${up.hits} tries)`);
});

t.test('rate limit on the inbound listener: 429 with headers, route override', async (t) => {
  const app = await upstream();
  const proxy = await startProxy({
    service: 'ratings', inboundPort: 0, outboundPort: 0, adminPort: 0, logger: silentLogger, accessLog: null,
    app: { host: '127.0.0.1', port: app.port },
    initialSnapshot: {
      version: 1, source: 'file', policies: decodePolicyText(`
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec:
  service: ratings
  rateLimit: { requestsPerSecond: 2, burst: 5 }
  routes:
    - match: { pathPrefix: /admin }
      rateLimit: { requestsPerSecond: 1, burst: 1 }
`),
    },
  });
  t.teardown(async () => { await proxy.close(); await app.close(); });
  const results = [];
  for (let i = 0; i < 10; i++) results.push(await request(proxy.ports.inbound));
  t.equal(results.filter((r) => r.status === 200).length, 5, 'the burst passes');
  const refused = results.find((r) => r.status === 429)!;
  t.equal(refused.headers['x-pillion-reason'], 'rate-limited');
  t.equal(refused.headers['x-ratelimit-limit'], '5');
  t.equal(refused.headers['x-ratelimit-remaining'], '0');
  t.ok(Number(refused.headers['retry-after']) >= 1);
  t.ok(Number(refused.headers['x-ratelimit-reset']) >= 1);
  t.match(JSON.parse(refused.body), { reason: 'rate-limited' });
  t.equal(app.hits, 5, 'refused requests never reached the app');
  const admin1 = await request(proxy.ports.inbound, { path: '/admin/x' });
  const admin2 = await request(proxy.ports.inbound, { path: '/admin/x' });
  t.same([admin1.status, admin2.status], [200, 429], 'the route has its own, smaller bucket');
  t.match(await admin(proxy, '/stats/prometheus'), /pillion_ratelimit_limited_total\{service="ratings"\} 6/);
});

t.test('a new config version replaces a changed breaker and drops a removed one', async (t) => {
  const up = await upstream();
  up.respond = (_q, res) => { res.statusCode = 500; res.end(); };
  const doc = (threshold: number) => `
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec: { service: ratings, endpoints: [127.0.0.1:${up.port}], circuitBreaker: { volumeThreshold: ${threshold}, resetTimeout: 60s } }
`;
  const { proxy } = await proxyWith(doc(2));
  t.teardown(async () => { await proxy.close(); await up.close(); });
  for (let i = 0; i < 3; i++) await request(proxy.ports.outbound);
  const state = async () => (JSON.parse(await admin(proxy, '/clusters')) as Array<Record<string, unknown>>).find((c) => c.service === 'ratings')?.breaker;
  t.equal(await state(), 'open');
  await proxy.applySnapshot({ version: 2, source: 'file', policies: decodePolicyText(doc(2)) });
  t.equal(await state(), 'open', 'an unchanged policy keeps its breaker');
  await proxy.applySnapshot({ version: 3, source: 'file', policies: decodePolicyText(doc(3)) });
  t.equal(await state(), 'closed', 'a changed policy gets a new breaker');
  t.match(await admin(proxy, '/stats/prometheus'), /pillion_circuit_state\{service="ratings"\} 0/);
  await proxy.applySnapshot({ version: 4, source: 'file', policies: [] });
  t.equal(await state(), undefined);
  t.notMatch(await admin(proxy, '/stats/prometheus'), /pillion_circuit_state\{service="ratings"\}/, 'a dropped breaker leaves no series behind');
});
