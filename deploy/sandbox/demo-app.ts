// The sandbox's app: a plain HTTP service that knows nothing of the mesh. It answers with
// what it saw (caller, forwarding headers), calls the services it is told to on GET /,
// and fails on demand (GET /status/NNN) so breakers and retries can be watched.
import http from 'node:http';

interface AppOptions {
  readonly name: string;
  readonly port: number;
  /** http://backend:8080/ and the like: plain URLs, no proxy settings. */
  readonly calls: readonly string[];
}

function parseArgs(argv: readonly string[]): AppOptions {
  let name = process.env.SERVICE ?? 'app';
  let port = Number(process.env.PORT ?? 8080);
  const calls: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--name' && value) { name = value; i++; }
    else if (flag === '--port' && value) { port = Number(value); i++; }
    else if (flag === '--call' && value) { calls.push(value); i++; }
    else throw new Error(`demo-app: unknown argument ${flag}`);
  }
  return { name, port, calls };
}

function call(url: string): Promise<{ url: string; status: number; body: unknown }> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 5000, agent: keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* not JSON: keep the text */ }
        resolve({ url, status: res.statusCode ?? 0, body });
      });
      res.on('error', () => resolve({ url, status: 0, body: 'response error' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ url, status: 0, body: err.message }));
  });
}

const keepAlive = new http.Agent({ keepAlive: true, timeout: 4000 });

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  const server = http.createServer((req, res) => {
    const m = /^\/status\/(\d{3})/.exec(req.url ?? '');
    const seen = {
      service: o.name,
      method: req.method,
      path: req.url,
      remoteAddress: req.socket.remoteAddress,
      headers: {
        'x-forwarded-for': req.headers['x-forwarded-for'],
        'x-forwarded-proto': req.headers['x-forwarded-proto'],
        'x-request-id': req.headers['x-request-id'],
        host: req.headers.host,
      },
    };
    const reply = (status: number, body: unknown) => {
      const text = `${JSON.stringify(body)}\n`;
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    req.resume();
    if (m) return reply(Number(m[1]), { ...seen, status: Number(m[1]) });
    if ((req.url === '/' || req.url?.startsWith('/call')) && o.calls.length > 0) {
      void Promise.all(o.calls.map(call)).then((downstream) => {
        reply(downstream.every((d) => d.status >= 200 && d.status < 400) ? 200 : 502, { ...seen, downstream });
      });
      return;
    }
    reply(200, seen);
  });
  server.keepAliveTimeout = 5000;
  server.listen(o.port, '0.0.0.0', () => process.stderr.write(`demo-app ${o.name} listening on :${o.port}\n`));
  const stop = () => { server.close(); process.exit(0); };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main();
