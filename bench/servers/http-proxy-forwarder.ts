// The baseline Node proxy: bare `http-proxy` with a keep-alive agent and nothing else,
// i.e. the least a Node sidecar could do (FACTS.md: without the agent it is 544 req/s).
import http from 'node:http';
import { parseArgs } from 'node:util';
import httpProxy from 'http-proxy';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, target: { type: 'string' } } });
if (!values.target) throw new Error('--target URL is required');

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: values.target, agent });
// An unhandled proxy error would crash the process (node-http-proxy #873).
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502);
  res.end();
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
