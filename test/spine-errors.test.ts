// Failure paths: timeouts, unreachable and resetting upstreams, client aborts, and
// malformed or ambiguous requests (never forwarded; the proxy stays up).
import t from 'tap';
import http from 'node:http';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { policy, policyFile, refusedPort, request, sleep, spawnProxy, startUpstream } from './helpers/proxy';

function raw(port: number, text: string | Buffer, waitMs = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (c) => { out += c; });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    setTimeout(() => s.destroy(), waitMs);
  });
}

t.test('upstream-timeout, upstream-unreachable, reset mid-body', async (t) => {
  const up = await startUpstream((req, res) => {
    if (req.url === '/slow') return void setTimeout(() => res.end('late'), 2000);
    if (req.url === '/reset-mid-body') {
      res.writeHead(200, { 'content-length': 1000 });
      res.write('partial');
      setTimeout(() => req.socket.destroy(), 50);
      return;
    }
    res.end('ok');
  });
  const deadPort = await refusedPort();
  const file = policyFile([
    policy('fast', `service: fast\nendpoints: [127.0.0.1:${up.port}]\ntimeout: 300ms`),
    policy('dead', `service: dead\nendpoints: [127.0.0.1:${deadPort}]`),
  ].join('---\n'));
  const p = await spawnProxy(['--service', 'web', '--config', file]);
  t.teardown(async () => { await p.stop(); await up.close(); });

  const started = Date.now();
  const slow = await request({ port: p.ports.outbound, path: '/slow', headers: { host: 'fast' } });
  t.equal(slow.status, 504);
  t.equal(slow.headers['x-pillion-reason'], 'upstream-timeout');
  t.ok(Date.now() - started < 1500, 'answered at the policy timeout, not when the upstream finished');

  const dead = await request({ port: p.ports.outbound, path: '/', headers: { host: 'dead' } });
  t.equal(dead.status, 503);
  t.equal(dead.headers['x-pillion-reason'], 'upstream-unreachable');

  const aborted = await new Promise<string>((resolve) => {
    http.get({ host: '127.0.0.1', port: p.ports.outbound, path: '/reset-mid-body', headers: { host: 'fast' } }, (res) => {
      res.on('data', () => {});
      res.on('aborted', () => resolve('aborted'));
      res.on('error', () => resolve('aborted'));
      res.on('end', () => resolve('ended'));
    }).on('error', () => resolve('aborted'));
  });
  t.equal(aborted, 'aborted', 'a reset mid-body aborts the client response instead of leaving it hanging');
  const ok = await request({ port: p.ports.outbound, path: '/', headers: { host: 'fast' } });
  t.equal(ok.status, 200, 'the proxy is still up');
});

t.test('client aborts abort the upstream request; upstream sockets return to baseline', async (t) => {
  let open = 0;
  const arrived = new EventEmitter();
  arrived.setMaxListeners(0);
  const up = await startUpstream((req, res) => {
    // Never answers /hang: only a client abort can end these.
    if (req.url !== '/hang') res.end('ok');
    else arrived.emit(String(req.headers['x-test-id']));
  });
  up.server.on('connection', (s) => { open++; s.on('close', () => { open--; }); });
  const file = policyFile(policy('hang', `service: hang\nendpoints: [127.0.0.1:${up.port}]\ntimeout: 60s`));
  const p = await spawnProxy(['--service', 'web', '--config', file]);
  t.teardown(async () => { await p.stop(); await up.close(); });

  await request({ port: p.ports.outbound, path: '/', headers: { host: 'hang' } });
  await sleep(100);
  const baseline = open;
  const agent = new http.Agent({ keepAlive: false, maxSockets: 100 });
  const total = 10_000;
  let done = 0;
  const deadline = Date.now() + 120_000;
  const one = (id: string) => new Promise<void>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: p.ports.outbound, path: '/hang', headers: { host: 'hang', 'x-test-id': id }, agent });
    req.on('error', () => resolve());
    // Abort once the upstream has the request (its socket is open), not before.
    const abort = () => { clearTimeout(cap); req.destroy(); resolve(); };
    const cap = setTimeout(() => { arrived.off(id, abort); abort(); }, 2000);
    arrived.once(id, abort);
  });
  const workers = Array.from({ length: 100 }, async () => {
    while (done < total && Date.now() < deadline) {
      done++;
      await one(String(done));
    }
  });
  await Promise.all(workers);
  t.equal(done, total, `${total} aborted requests sent`);
  t.ok(up.hits > total * 0.9, `most reached the upstream before the client aborted (${up.hits})`);
  let settled = -1;
  for (let i = 0; i < 100; i++) {
    await sleep(100);
    if (open <= baseline + 1) { settled = open; break; }
  }
  t.ok(settled >= 0 && settled <= baseline + 1, `open upstream sockets back to baseline (${baseline}); now ${open}`);
  const ok = await request({ port: p.ports.outbound, path: '/', headers: { host: 'hang' } });
  t.equal(ok.status, 200, 'the proxy still forwards');
});

t.test('malformed and ambiguous requests are refused, never forwarded', async (t) => {
  const up = await startUpstream((_req, res) => res.end('ok'));
  const file = policyFile(policy('app', `service: app\nendpoints: [127.0.0.1:${up.port}]`));
  const p = await spawnProxy(['--service', 'web', '--config', file, '--header-timeout', '500ms']);
  t.teardown(async () => { await p.stop(); await up.close(); });
  const port = p.ports.outbound;

  const cases: Array<[string, string]> = [
    ['content-length with transfer-encoding', 'POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['duplicate content-length', 'POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde'],
    ['duplicate equal content-length', 'POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd'],
    ['invalid header bytes', 'GET / HTTP/1.1\r\nHost: app\r\nX-Bad\x01Name: v\r\n\r\n'],
    ['invalid header value bytes', 'GET / HTTP/1.1\r\nHost: app\r\nX-Bad: v\x00v\r\n\r\n'],
    ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: app\r\nX-Folded: a\r\n b\r\n\r\n'],
    ['space before colon', 'GET / HTTP/1.1\r\nHost: app\r\nContent-Length : 0\r\n\r\n'],
  ];
  for (const [label, text] of cases) {
    const reply = await raw(port, text);
    t.match(reply, /^HTTP\/1.1 400 /, `${label}: 400`);
    t.match(reply, /x-pillion-reason: bad-request/, `${label}: bad-request reason`);
  }
  const big = await raw(port, `GET / HTTP/1.1\r\nHost: app\r\nX-Big: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
  t.match(big, /^HTTP\/1.1 431 /, 'headers over 16 KB: 431');

  const started = Date.now();
  const slow = await new Promise<string>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: app\r\n'));
    let out = '';
    s.on('data', (c) => { out += c; });
    s.on('close', () => resolve(out));
    setTimeout(() => { s.destroy(); resolve(out); }, 5000);
  });
  t.match(slow, /^HTTP\/1.1 408 /, 'headers sent too slowly: 408');
  t.ok(Date.now() - started < 3000, 'within the configured header timeout (plus the check interval)');

  t.equal(up.hits, 0, 'nothing was forwarded');
  const ok = await request({ port, path: '/', headers: { host: 'app' } });
  t.equal(ok.status, 200, 'the proxy is still up and forwarding');
});
