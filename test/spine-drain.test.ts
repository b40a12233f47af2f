// Graceful shutdown: SIGTERM (or POST /drain) finishes in-flight requests, refuses new
// connections, and exits 0 within --drain-timeout.
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { admin, policy, policyFile, sleep, spawnProxy, startUpstream } from './helpers/proxy';

t.test('SIGTERM with 200 slow requests in flight: all complete, new connections refused, exit 0', async (t) => {
  let arrived = 0;
  const up = await startUpstream((req, res) => {
    arrived++;
    setTimeout(() => res.end(`done ${req.url}`), 1500);
  });
  const file = policyFile(policy('slow', `service: slow\nendpoints: [127.0.0.1:${up.port}]`));
  const p = await spawnProxy(['--service', 'web', '--config', file, '--drain-timeout', '5s']);
  t.teardown(async () => { await p.stop(); await up.close(); });

  const agent = new http.Agent({ keepAlive: true, maxSockets: 200 });
  const results = Array.from({ length: 200 }, (_, i) => new Promise<{ status: number; body: string; connection: string | undefined }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: p.ports.outbound, path: `/r${i}`, headers: { host: 'slow' }, agent }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body, connection: res.headers.connection }));
    }).on('error', reject);
  }));
  for (let i = 0; i < 100 && arrived < 200; i++) await sleep(20);
  t.equal(arrived, 200, 'all 200 requests are in flight at the upstream');

  const sentAt = Date.now();
  p.child.kill('SIGTERM');
  await sleep(200);
  const ready = await admin(p.ports.admin, '/ready').catch(() => ({ status: 0 }));
  t.equal(ready.status, 503, '/ready turns 503 while draining');
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(p.ports.outbound, '127.0.0.1');
    s.on('connect', () => { s.destroy(); resolve('accepted'); });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused');

  const replies = await Promise.all(results);
  t.ok(replies.every((r, i) => r.status === 200 && r.body === `done /r${i}`), 'every in-flight request got its real response');
  t.ok(replies.every((r) => r.connection === 'close'), 'keep-alive responses carry connection: close');
  const code = await p.exited;
  t.equal(code, 0, 'exit code 0');
  t.ok(Date.now() - sentAt < 5000, 'exited within --drain-timeout');
  agent.destroy();
});

t.test('POST /drain drains like SIGTERM; the drain timeout bounds a stuck request', async (t) => {
  const up = await startUpstream(() => { /* never answers */ });
  const file = policyFile(policy('stuck', `service: stuck\nendpoints: [127.0.0.1:${up.port}]\ntimeout: 60s`));
  const p = await spawnProxy(['--service', 'web', '--config', file, '--drain-timeout', '1s']);
  t.teardown(async () => { await p.stop(); await up.close(); });
  const pending = new Promise<string>((resolve) => {
    http.get({ host: '127.0.0.1', port: p.ports.outbound, path: '/', headers: { host: 'stuck' } }, (res) => resolve(String(res.statusCode)))
      .on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  await sleep(200);
  const started = Date.now();
  const r = await admin(p.ports.admin, '/drain', 'POST');
  t.equal(r.status, 202);
  const code = await p.exited;
  t.equal(code, 0, 'exit code 0');
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 900 && elapsed < 4000, `exited after the 1s drain timeout (${elapsed} ms)`);
  t.ok(['ECONNRESET', 'socket hang up'].includes(await pending) || (await pending) !== '200', 'the stuck request was cut at the deadline');
});
