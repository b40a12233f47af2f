// `pillion sandbox up|down`: local pods in network namespaces (root), see deploy/sandbox.
import * as path from 'node:path';
import { CliError } from '../errors';
import { parseFlags } from '../args';
import {
  DEFAULT_STATE_DIR, loadTopology, sandboxBench, sandboxDown, SandboxError, sandboxUp, TopologyError,
} from '../../deploy/sandbox';

const USAGE = 'usage: pillion sandbox up|down|bench [-f TOPOLOGY] [--state-dir DIR] [--config-source control|file] [--duration SECONDS] [--connections N]';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('sandbox', argv, {
    file: { type: 'string', short: 'f' },
    'state-dir': { type: 'string' },
    'config-source': { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
  }, true);
  const [action, ...extra] = positionals;
  if (extra.length > 0 || (action !== 'up' && action !== 'down' && action !== 'bench')) throw new CliError(`pillion sandbox: ${USAGE}`, 2);
  const stateDir = path.resolve(values['state-dir'] ?? DEFAULT_STATE_DIR);
  const log = (line: string) => process.stderr.write(`pillion sandbox: ${line}\n`);
  const source = values['config-source'] ?? 'control';
  if (source !== 'control' && source !== 'file') throw new CliError('pillion sandbox: --config-source must be control or file', 2);
  try {
    if (action === 'down') {
      if (values.file) throw new CliError('pillion sandbox: down takes no -f; it removes what the state file records', 2);
      const removed = await sandboxDown(stateDir, log);
      if (removed) process.stdout.write('pillion sandbox: removed\n');
      return 0;
    }
    // dist/cli/commands -> the checkout root.
    const root = path.resolve(__dirname, '..', '..', '..');
    if (action === 'bench') {
      const num = (flag: string, value: string | undefined, fallback: number) => {
        if (value === undefined) return fallback;
        if (!/^\d+$/.test(value) || Number(value) < 1) throw new CliError(`pillion sandbox: --${flag} must be a positive integer`, 2);
        return Number(value);
      };
      const rows = sandboxBench({
        stateDir, root, log,
        durationSeconds: num('duration', values.duration, 8), connections: num('connections', values.connections, 32),
      });
      process.stdout.write(`${'path'.padEnd(34)} ${'req/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} non-2xx\n`);
      for (const r of rows) {
        process.stdout.write(`${r.path.padEnd(34)} ${r.requestsPerSecond.toFixed(0).padStart(8)} ${r.p50Ms.toFixed(2).padStart(8)} ${r.p99Ms.toFixed(2).padStart(8)} ${r.non2xx}\n`);
      }
      return 0;
    }
    const topology = loadTopology(values.file);
    const state = await sandboxUp({ topology, stateDir, root, configSource: source, log });
    const pods = state.ready?.pods ?? [];
    const first = pods.find((p) => topology.pods.find((t) => t.name === p.name)?.calls.length) ?? pods[0]!;
    const target = pods.find((p) => p.name !== first.name) ?? first;
    process.stdout.write([
      `pillion sandbox: up (state in ${stateDir})`,
      ...pods.map((p) => `  pod ${p.name}: netns pillion-${p.name}, ${p.ip}, app on :${p.port}, sidecar admin 127.0.0.1:15000`),
      state.ready?.controlUrl ? `  control server: ${state.ready.controlUrl} (netns pillion-net)` : '  config: --config file (no control server)',
      `try: ip netns exec pillion-${first.name} curl -s http://${target.name}:${target.port}/`,
      '',
    ].join('\n'));
    return 0;
  } catch (err) {
    if (err instanceof SandboxError || err instanceof TopologyError) throw new CliError(`pillion sandbox: ${err.message}`, 1);
    throw err;
  }
}
