// The one upstream every scenario reaches: a bare Node http server. `/` answers 12 bytes
// (maximum-throughput load), `/1k` answers 1,024 bytes (fixed-rate load, as Istio measures).
// Run as its own process so its CPU never mixes with the harness's or a proxy's.
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const small = Buffer.from('hello world\n');
const large = Buffer.alloc(1024, 'x');

const server = http.createServer((req, res) => {
  const body = req.url === '/1k' ? large : small;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
// Longer than any proxy's idle keep-alive, so pooled upstream sockets are never closed
// under a proxy between load phases (nodejs/node#47130).
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
