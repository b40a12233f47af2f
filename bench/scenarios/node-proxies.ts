// The Node proxies Pillion is compared with, each run from bench/servers as its own process.
import path from 'node:path';
import { startAnswering, freePort } from '../child';
import { nodeCommand, Scenario, ScenarioContext, RunningTarget } from './types';

async function startServer(ctx: ScenarioContext, name: string, script: string): Promise<RunningTarget> {
  const port = await freePort();
  const child = await startAnswering({
    name,
    ...nodeCommand(ctx, [path.join(ctx.root, 'dist', 'bench', 'servers', script), '--port', String(port), '--target', `http://127.0.0.1:${ctx.upstreamPort}`]),
    logFile: path.join(ctx.rawDir, `${name}.stderr.log`),
  }, `http://127.0.0.1:${port}/`, { timeoutMs: ctx.startTimeoutMs });
  return { port, hostHeader: 'upstream', pids: [child.pid], stop: () => child.stop() };
}

function resolvable(ctx: { root: string }, module: string): boolean {
  try {
    require.resolve(module, { paths: [ctx.root] });
    return true;
  } catch {
    return false;
  }
}

export const httpProxy: Scenario = {
  name: 'http-proxy',
  label: 'bare http-proxy 1.18 + keep-alive agent',
  hops: 1,
  unavailable: (ctx) => (resolvable(ctx, 'http-proxy') ? undefined : 'the http-proxy module is not installed'),
  start: (ctx) => startServer(ctx, 'http-proxy', 'http-proxy-forwarder.js'),
};

export const fastifyProxy: Scenario = {
  name: 'fastify-proxy',
  label: 'fastify 5 + @fastify/http-proxy 11 (undici)',
  hops: 1,
  unavailable: (ctx) => (resolvable(ctx, 'fastify') && resolvable(ctx, '@fastify/http-proxy')
    ? undefined : 'fastify and @fastify/http-proxy are devDependencies: run `npm install` with dev dependencies'),
  start: (ctx) => startServer(ctx, 'fastify-proxy', 'fastify-proxy.js'),
};
