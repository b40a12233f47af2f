// rateLimit scope: global through real proxies sharing a redis-server this test starts itself.
import t from 'tap';
import http from 'node:http';
import net, { AddressInfo } from 'node:net';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import { decodePolicyText } from '../proxy/config';
import { startProxy, RunningProxy } from '../proxy';
import { silentLogger, Logger } from '../proxy/runtime/logger';
import { planShared } from '../proxy/policies/rate-limit';

const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
const skip = hasRedis ? false : 'redis-server is not installed (CI installs it)';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setTimeout(500, () => { sock.destroy(); resolve(false); });
    sock.on('error', () => resolve(false));
    sock.on('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => { sock.destroy(); resolve(d.toString().startsWith('+PONG')); });
  });
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    if (await ping(port)) return child;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

async function app(): Promise<{ port: number; hits: number; close(): Promise<void> }> {
  const a = { port: 0, hits: 0, close: async () => {} };
  const server = http.createServer((_req, res) => { a.hits++; res.end('ok'); });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  a.port = (server.address() as AddressInfo).port;
  a.close = () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
  return a;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
t.teardown(() => agent.destroy());

function get(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)); });
    req.setTimeout(5000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
  });
}

async function metric(proxy: RunningProxy, name: string): Promise<number> {
  const text = await proxy.metrics.registry.metrics();
  const m = new RegExp(`^${name}\\{service="ratings"\\} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function until(what: string, fn: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function policy(rps: number, burst: number) {
  return decodePolicyText(`
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec:
  service: ratings
  rateLimit: { requestsPerSecond: ${rps}, burst: ${burst}, scope: global }
`);
}

async function proxyFor(appPort: number, redisPort: number, policies: ReturnType<typeof policy>, logger: Logger = silentLogger) {
  return startProxy({
    service: 'ratings', inboundPort: 0, outboundPort: 0, adminPort: 0, logger, accessLog: null,
    app: { host: '127.0.0.1', port: appPort }, redisUrl: `redis://127.0.0.1:${redisPort}`,
    initialSnapshot: { version: 1, source: 'file', policies },
  });
}

t.test('two proxies share one budget: 400 requests within a second, about 50 admitted', { skip }, async (t) => {
  const redisPort = await freePort();
  const redis = await startRedis(redisPort);
  t.teardown(() => stopRedis(redis));
  const a = await app();
  t.teardown(() => a.close());
  const policies = policy(50, 50);
  const p1 = await proxyFor(a.port, redisPort, policies);
  const p2 = await proxyFor(a.port, redisPort, policies);
  t.teardown(() => p1.close());
  t.teardown(() => p2.close());
  await until('both proxies connected to redis', async () => (await metric(p1, 'pillion_ratelimit_redis_up')) === 1 && (await metric(p2, 'pillion_ratelimit_redis_up')) === 1);
  // Warm up (JIT, connections), then let the shared bucket refill completely (50 at 50/s).
  for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: 20 }, (_, j) => get((j & 1 ? p1 : p2).ports.inbound)));
  await sleep(1300);
  a.hits = 0;

  // 20 waves of 20 requests (10 per proxy), one every 25 ms: 400 requests in about half a second.
  const started = Date.now();
  const statuses: number[] = [];
  for (let wave = 0; wave < 20; wave++) {
    const waveStart = Date.now();
    const batch = [];
    for (let i = 0; i < 10; i++) batch.push(get(p1.ports.inbound), get(p2.ports.inbound));
    statuses.push(...await Promise.all(batch));
    await sleep(Math.max(0, 25 - (Date.now() - waveStart)));
  }
  const elapsedS = (Date.now() - started) / 1000;
  const admitted = statuses.filter((s) => s === 200).length;
  const plan = planShared(policies[0]!.rateLimit!);
  // The documented bound (shared-budget.ts, docs/readme/policies.md):
  // burst + rps * W + increaseAmount + N * (batch + 1).
  const bound = 50 + Math.ceil(50 * elapsedS) + plan.increaseAmount + 2 * (plan.batch + 1);
  t.comment(`400 requests sent in ${elapsedS.toFixed(2)} s, ${admitted} admitted, bound ${bound}`);
  t.equal(statuses.length, 400);
  t.ok(statuses.every((s) => s === 200 || s === 429), 'every answer is 200 or 429');
  t.ok(admitted >= 50, `admitted ${admitted} >= 50`);
  t.ok(admitted <= bound, `admitted ${admitted} <= ${bound} (50 + refill over ${elapsedS.toFixed(2)} s + documented over-admission)`);
  t.equal(a.hits, admitted, 'the app saw exactly the admitted requests');
  t.ok(statuses.slice(0, 200).filter((s) => s === 200).length > 0, 'both halves of the run admitted some');
});

t.test('redis unreachable: fail open, log once, count it; sharing resumes when redis returns', { skip }, async (t) => {
  const redisPort = await freePort();
  let redis = await startRedis(redisPort);
  t.teardown(() => stopRedis(redis));
  const a = await app();
  t.teardown(() => a.close());
  const lines: string[] = [];
  const logger: Logger = { info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };
  const p = await proxyFor(a.port, redisPort, policy(5, 5), logger);
  t.teardown(() => p.close());
  await until('connected', async () => (await metric(p, 'pillion_ratelimit_redis_up')) === 1);
  await sleep(100);

  // Sequential requests; what a 5/s bucket of 5 may admit in that time, plus the documented
  // over-admission of one proxy (batch 1, one credit, one refill step).
  // `failedOpen`: admitted without the budget and counted as such (Redis down, or a budget
  // still recovering its keys: shared-budget.ts); the bound is for what the budget admitted.
  const burst = async (n: number) => {
    let ok = 0;
    const started = Date.now();
    const openBefore = await metric(p, 'pillion_ratelimit_fail_open_total');
    for (let i = 0; i < n; i++) if ((await get(p.ports.inbound)) === 200) ok++;
    const failedOpen = (await metric(p, 'pillion_ratelimit_fail_open_total')) - openBefore;
    const plan = planShared(policy(5, 5)[0]!.rateLimit!);
    return { ok, failedOpen, bound: 5 + Math.ceil((5 * (Date.now() - started)) / 1000) + plan.increaseAmount + plan.batch + 1 };
  };
  const shared = await burst(30);
  // (Fewer than 5 is possible: with a batch of one token, a request that arrives while the
  // next token is being fetched is refused. Over-admission is what must never happen.)
  t.ok(shared.ok >= 1 && shared.ok <= shared.bound, `shared budget enforced while redis is up (${shared.ok} of 30, bound ${shared.bound})`);

  await stopRedis(redis);
  await until('redis seen as down', async () => (await metric(p, 'pillion_ratelimit_redis_up')) === 0);
  t.equal((await burst(30)).ok, 30, 'fails open: every request admitted');
  t.ok((await metric(p, 'pillion_ratelimit_fail_open_total')) >= 30, 'counted in pillion_ratelimit_fail_open_total');
  await sleep(1500); // several reconnection attempts
  t.ok((await metric(p, 'pillion_ratelimit_redis_errors_total')) >= 1, 'connection errors counted');
  t.equal(lines.filter((l) => l.startsWith('warn redis unreachable')).length, 1, 'logged once for the outage');

  redis = await startRedis(redisPort);
  await until('redis seen as back', async () => (await metric(p, 'pillion_ratelimit_redis_up')) === 1, 8000);
  t.equal(lines.filter((l) => l.startsWith('info redis reachable again')).length, 1, 'recovery logged once');
  // Until the new redis has answered (Bottleneck re-creating its keys, a first batch), the
  // budget fails open as while redis was down (unit-tested in policy-rate-limit.test.ts);
  // wait for a request that is no longer counted as fail-open.
  await until('the new redis has answered', async () => {
    const before = await metric(p, 'pillion_ratelimit_fail_open_total');
    await get(p.ports.inbound);
    return (await metric(p, 'pillion_ratelimit_fail_open_total')) === before;
  }, 8000);
  await sleep(300); // a fresh reservoir in the new redis, refilled batches
  const after = await burst(30);
  // The new redis starts a full reservoir: the same bound as before the outage. No lower
  // bound here (small batches under-admit on a loaded machine); over-admission must never
  // happen. On a loaded machine the budget may still meet a lost key mid-burst and fail open
  // for a request or two (seen: 10 admitted against a bound of 9 in a full suite run); those
  // are counted, and are not the budget's.
  const byBudget = after.ok - after.failedOpen;
  t.ok(byBudget <= after.bound, `the shared budget is enforced again (${byBudget} of 30 by the budget, ${after.failedOpen} failed open, bound ${after.bound})`);
  t.ok(after.ok < 30, `not failing open any more (${after.ok} of 30 admitted, ${after.failedOpen} of them failed open)`);
});
