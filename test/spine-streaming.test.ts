// Bodies stream in both directions: large transfers stay out of memory, chunked bodies on
// every method, trailers, 100-continue and WebSocket upgrades pass through.
import t from 'tap';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { WebSocket, WebSocketServer } from 'ws';
import { policy, policyFile, request, spawnProxy, startUpstream } from './helpers/proxy';

const MB = 1024 * 1024;

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

t.test('200 MB up and 200 MB down stream through with bounded memory', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 7);
  const up = await startUpstream((req, res) => {
    if (req.url === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let left = 200 * MB;
      const pump = () => {
        while (left > 0) {
          left -= chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return;
    }
    let n = 0;
    req.on('data', (c: Buffer) => { n += c.length; });
    req.on('end', () => res.end(String(n)));
  });
  const file = policyFile(policy('big', `service: big\nendpoints: [127.0.0.1:${up.port}]\ntimeout: 60s`));
  const p = await spawnProxy(['--service', 'web', '--config', file]);
  t.teardown(async () => { await p.stop(); await up.close(); });

  const uploaded = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: p.ports.outbound, method: 'POST', path: '/upload', headers: { host: 'big' } }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    let left = 200 * MB;
    const pump = () => {
      while (left > 0) {
        left -= chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  t.equal(Number(uploaded), 200 * MB, 'the upstream received all 200 MB (chunked upload)');

  const downloaded = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: p.ports.outbound, path: '/download', headers: { host: 'big' } }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => { n += c.length; });
      res.on('end', () => resolve(n));
      res.on('error', reject);
    }).on('error', reject);
  });
  t.equal(downloaded, 200 * MB, 'the client received all 200 MB');
  const peak = peakRssMb(p.child.pid!);
  t.ok(peak < 150, `proxy peak resident memory ${peak.toFixed(0)} MB < 150 MB`);
});

t.test('chunked bodies on every method, trailers both ways, 100-continue', async (t) => {
  const up = await startUpstream((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      res.writeHead(200, { trailer: 'x-checksum', 'x-method': req.method!, 'x-te': String(req.headers['transfer-encoding'] ?? '') });
      res.write(body);
      res.addTrailers({ 'x-checksum': `len=${body.length}`, 'x-req-trailer': String(req.trailers['x-client-trailer'] ?? '') });
      res.end();
    });
  });
  const file = policyFile(policy('echo', `service: echo\nendpoints: [127.0.0.1:${up.port}]`));
  const p = await spawnProxy(['--service', 'web', '--config', file]);
  t.teardown(async () => { await p.stop(); await up.close(); });

  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
    const reply = await new Promise<{ body: string; trailers: NodeJS.Dict<string>; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: p.ports.outbound, method, path: '/', headers: { host: 'echo', 'transfer-encoding': 'chunked', trailer: 'x-client-trailer' } }, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ body, trailers: res.trailers, headers: res.headers }));
      });
      req.on('error', reject);
      req.write('hello ');
      req.write('chunked ');
      req.addTrailers({ 'x-client-trailer': 'from-client' });
      req.end('world');
    });
    t.equal(reply.body, 'hello chunked world', `${method}: chunked body arrives whole`);
    t.equal(reply.trailers['x-checksum'], 'len=19', `${method}: response trailer forwarded`);
    t.equal(reply.trailers['x-req-trailer'], 'from-client', `${method}: request trailer forwarded`);
  }

  const cont = await new Promise<{ status: number; body: string; continued: boolean }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: p.ports.outbound, method: 'POST', path: '/', headers: { host: 'echo', expect: '100-continue', 'content-length': 4 } });
    let continued = false;
    req.on('continue', () => { continued = true; req.end('body'); });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode!, body, continued }));
    });
    req.on('error', reject);
  });
  t.ok(cont.continued, 'the client is told to continue');
  t.equal(cont.body, 'body', '100-continue request body forwarded');
});

t.test('WebSocket upgrades pass through both listeners', async (t) => {
  const up = await startUpstream((_req, res) => res.end('http'));
  const wss = new WebSocketServer({ server: up.server });
  wss.on('connection', (ws, req) => ws.on('message', (m) => ws.send(`echo:${m}:${req.headers['x-forwarded-for']}`)));
  const file = policyFile(policy('chat', `service: chat\nendpoints: [127.0.0.1:${up.port}]`));
  const p = await spawnProxy(['--service', 'web', '--config', file, '--app', `127.0.0.1:${up.port}`]);
  t.teardown(async () => { wss.close(); await p.stop(); await up.close(); });

  for (const [label, port, host] of [['outbound', p.ports.outbound, 'chat'], ['inbound', p.ports.inbound, 'web']] as const) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket`, { headers: { host } });
    const msg = await new Promise<string>((resolve, reject) => {
      ws.on('open', () => ws.send('hi'));
      ws.on('message', (m) => resolve(String(m)));
      ws.on('error', reject);
    });
    ws.close();
    t.equal(msg, 'echo:hi:127.0.0.1', `${label}: WebSocket messages flow both ways`);
  }
  const plain = await request({ port: p.ports.outbound, path: '/', headers: { host: 'chat' } });
  t.equal(plain.body, 'http');
});
