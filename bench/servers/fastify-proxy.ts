// The Node proxy users reach for: fastify with @fastify/http-proxy (undici underneath),
// with its defaults, as a user would deploy it.
import { parseArgs } from 'node:util';
import Fastify from 'fastify';
import fastifyHttpProxy from '@fastify/http-proxy';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, target: { type: 'string' } } });
if (!values.target) throw new Error('--target URL is required');

async function main(): Promise<void> {
  const app = Fastify({ logger: false, keepAliveTimeout: 65_000 });
  await app.register(fastifyHttpProxy, { upstream: values.target! });
  const address = await app.listen({ port: Number(values.port), host: '127.0.0.1' });
  process.stdout.write(`${JSON.stringify({ port: Number(new URL(address).port) })}\n`);
  process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)); });
}
void main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
