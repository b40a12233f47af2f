// Pillion itself, started as a pod starts it (`pillion proxy ... --config FILE`, with the
// sidecar's Node flags), its access log discarded. One sidecar (outbound listener, Host:
// upstream), or a client and a server sidecar pair as in a mesh, where the rate limit
// (inbound) and the breaker and retries (outbound) are each enforced where SPEC.md puts them.
import path from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { startChild, freePort, retryOnAddressInUse, waitForHttp, Child } from '../child';
import { nodeCommand, Scenario, ScenarioContext, RunningTarget } from './types';
import { SIDECAR_NODE_FLAGS } from '../../proxy/runtime/node-flags';

export type TracingMode = 'off' | '1%' | '100%';

export interface PillionVariant {
  readonly name: string;
  readonly label: string;
  readonly pair: boolean;
  readonly policies: 'none' | 'local' | 'global';
  readonly tracing: TracingMode;
}

/** The TrafficPolicy for service `upstream` in this variant. */
export function policyYaml(endpointPort: number, policies: PillionVariant['policies']): string {
  const lines = [
    'apiVersion: pillion.dev/v1alpha1',
    'kind: TrafficPolicy',
    'metadata: { name: upstream }',
    'spec:',
    '  service: upstream',
    `  endpoints: [127.0.0.1:${endpointPort}]`,
  ];
  if (policies !== 'none') {
    // Every policy on, none tripping: the bucket is far above the offered load and the
    // upstream never fails, so what is measured is the cost of checking.
    lines.push(
      '  timeout: 5s',
      '  retries: { attempts: 2, perTryTimeout: 2s, on: [connect-failure, reset, gateway-error, "503"] }',
      '  circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, windowSeconds: 10, resetTimeout: 10s, maxConcurrent: 4096 }',
      `  rateLimit: { requestsPerSecond: 1000000, burst: 1000000, key: none, scope: ${policies} }`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** The environment a sidecar gets: the standard OTEL variables only, per tracing mode. */
export function tracingEnv(mode: TracingMode, sinkUrl: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OTEL_')) env[k] = v;
  if (mode === 'off') {
    env.OTEL_SDK_DISABLED = 'true';
    env.OTEL_TRACES_SAMPLER = 'always_off';
    return env;
  }
  env.OTEL_EXPORTER_OTLP_ENDPOINT = sinkUrl;
  env.OTEL_TRACES_SAMPLER = 'traceidratio';
  env.OTEL_TRACES_SAMPLER_ARG = mode === '1%' ? '0.01' : '1';
  return env;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-2).join(' | ').slice(0, 400);
  } catch {
    return '';
  }
}

interface Sidecar { child: Child; inbound: number; outbound: number; admin: number }

/** Retried on new ports when one was taken before the sidecar bound it (see retryOnAddressInUse). */
function startSidecar(ctx: ScenarioContext, v: PillionVariant, role: string, service: string, config: string): Promise<Sidecar> {
  return retryOnAddressInUse(() => startSidecarOnce(ctx, v, role, service, config));
}

async function startSidecarOnce(ctx: ScenarioContext, v: PillionVariant, role: string, service: string, config: string): Promise<Sidecar> {
  const [inbound, outbound, admin] = [await freePort(), await freePort(), await freePort()];
  // Started with the flags every sidecar gets (proxy/runtime/node-flags.ts), as in a pod.
  const args = [...SIDECAR_NODE_FLAGS, path.join(ctx.root, 'bin', 'pillion.js'), 'proxy', '--service', service, '--config', config,
    '--app', `127.0.0.1:${ctx.upstreamPort}`,
    '--inbound-port', String(inbound), '--outbound-port', String(outbound), '--admin-port', String(admin)];
  if (v.policies === 'global' && ctx.redisUrl) args.push('--redis', ctx.redisUrl);
  const logFile = path.join(ctx.rawDir, `${v.name}-${role}.stderr.log`);
  const child = startChild({ name: `pillion ${role}`, ...nodeCommand(ctx, args), env: tracingEnv(v.tracing, ctx.otlp.url), logFile, cwd: ctx.rawDir });
  try {
    await waitForHttp(child, `http://127.0.0.1:${admin}/ready`, { timeoutMs: ctx.startTimeoutMs });
  } catch (err) {
    await child.stop();
    throw new Error(`${(err as Error).message}; stderr: ${tail(logFile)}`);
  }
  return { child, inbound, outbound, admin };
}

async function startPillion(ctx: ScenarioContext, v: PillionVariant): Promise<RunningTarget> {
  const config = path.join(ctx.rawDir, `${v.name}.yaml`);
  const started: Sidecar[] = [];
  const stop = async () => { await Promise.all(started.map((s) => s.child.stop())); };
  try {
    let endpointPort = ctx.upstreamPort;
    if (v.pair) {
      // The server sidecar runs as service `upstream` in front of the app: its inbound
      // listener enforces the policy's rate limit.
      writeFileSync(config, policyYaml(ctx.upstreamPort, v.policies));
      const server = await startSidecar(ctx, v, 'server', 'upstream', config);
      started.push(server);
      endpointPort = server.inbound;
    }
    writeFileSync(config, policyYaml(endpointPort, v.policies));
    const client = await startSidecar(ctx, v, 'client', 'bench', config);
    started.push(client);
    const target = { port: client.outbound, hostHeader: 'upstream', pids: started.map((s) => s.child.pid), stop };
    await waitForHttp(client.child, `http://127.0.0.1:${client.outbound}/`, { host: 'upstream', timeoutMs: ctx.startTimeoutMs ?? 5000 });
    return target;
  } catch (err) {
    await stop();
    throw err;
  }
}

function pillionScenario(v: PillionVariant): Scenario {
  return {
    name: v.name, label: v.label, hops: v.pair ? 2 : 1,
    unavailable(ctx) {
      if (!existsSync(path.join(ctx.root, 'dist', 'cli', 'main.js'))) return 'Pillion is not built (npm run build)';
      if (v.policies === 'global' && !ctx.redisUrl) return 'no redis-server to share the global rate limit through';
      return undefined;
    },
    start: (ctx) => startPillion(ctx, v),
  };
}

export const pillionVariants: readonly PillionVariant[] = [
  { name: 'pillion', label: 'Pillion, no policies, tracing off', pair: false, policies: 'none', tracing: 'off' },
  { name: 'pillion-trace-1', label: 'Pillion, no policies, tracing 1%', pair: false, policies: 'none', tracing: '1%' },
  { name: 'pillion-trace-100', label: 'Pillion, no policies, tracing 100%', pair: false, policies: 'none', tracing: '100%' },
  { name: 'pillion-pair', label: 'Pillion client+server sidecar pair, no policies', pair: true, policies: 'none', tracing: 'off' },
  // Tracing stays off here as in pillion-pair, so that the ratio issue 3 asks for compares
  // the policies alone (tracing's cost is the pillion-trace-* rows').
  {
    name: 'pillion-pair-policies', pair: true, policies: 'local', tracing: 'off',
    label: 'Pillion pair: rate limit (local), breaker, retries, timeout, metrics',
  },
  {
    name: 'pillion-pair-global', pair: true, policies: 'global', tracing: 'off',
    label: 'Pillion pair: as above, rate limit scope global (Redis)',
  },
];

export const pillionScenarios: readonly Scenario[] = pillionVariants.map(pillionScenario);
