// `pillion sandbox bench`: the price of interception, measured in a running sandbox: wrk
// from the calling pod to its first callee through both sidecars, then the same call with
// the iptables rules removed (app to app), then the rules are put back.
import * as path from 'node:path';
import { run, SandboxError, tryRun } from './commands';
import { readState } from './state';
import { PROXY_UID, podNetns } from './up';

export interface BenchRow {
  readonly path: string;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly non2xx: number;
}

function ms(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

export function parseWrk(text: string): Omit<BenchRow, 'path'> {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const p50 = /^\s+50%\s+(\S+)/m.exec(text)?.[1];
  const p99 = /^\s+99%\s+(\S+)/m.exec(text)?.[1];
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  return { requestsPerSecond: rps, p50Ms: p50 ? ms(p50) : NaN, p99Ms: p99 ? ms(p99) : NaN, non2xx };
}

export interface BenchOptions {
  readonly stateDir: string;
  readonly root: string;
  readonly durationSeconds: number;
  readonly connections: number;
  readonly log: (line: string) => void;
}

export function sandboxBench(o: BenchOptions): BenchRow[] {
  if (process.geteuid?.() !== 0) throw new SandboxError('must run as root (it runs wrk and iptables inside the pods)');
  const state = readState(o.stateDir);
  if (!state?.ready) throw new SandboxError(`no running sandbox in ${o.stateDir}; run \`pillion sandbox up\` first`);
  if (tryRun('wrk', ['-v']).status === null) throw new SandboxError('wrk not found on PATH; install wrk');
  const topoPods = state.ready.pods;
  // The first pod that calls another is the client; its first callee is the target.
  const names = new Set(topoPods.map((p) => p.name));
  const client = topoPods.find((p) => p.name === 'frontend' && names.has('backend')) ?? topoPods[0]!;
  const target = topoPods.find((p) => p.name === 'backend') ?? topoPods.find((p) => p !== client) ?? client;
  const url = `http://${target.name}:${target.port}/`;
  const cli = path.join(o.root, 'bin', 'pillion.js');
  const wrk = (label: string): BenchRow => {
    o.log(`${label}: wrk -t1 -c${o.connections} -d${o.durationSeconds}s ${url} in ${podNetns(client.name)}`);
    const out = run('ip', ['netns', 'exec', podNetns(client.name), 'wrk', '-t1', `-c${o.connections}`, `-d${o.durationSeconds}s`, '--latency', url], { timeoutMs: (o.durationSeconds + 30) * 1000 });
    return { path: label, ...parseWrk(out) };
  };
  const pods = [...new Set([client.name, target.name])].map(podNetns);
  const iptables = (ns: string, args: string[]) => run('ip', ['netns', 'exec', ns, process.execPath, cli, 'init-iptables', ...args]);
  // Warm both paths (JIT, keep-alive pools) so the first measurement is not the cold one.
  tryRun('ip', ['netns', 'exec', podNetns(client.name), 'wrk', '-t1', '-c4', '-d1s', url], { timeoutMs: 20_000 });
  const through = wrk('through both sidecars (iptables)');
  for (const ns of pods) iptables(ns, ['--cleanup']);
  try {
    tryRun('ip', ['netns', 'exec', podNetns(client.name), 'wrk', '-t1', '-c4', '-d1s', url], { timeoutMs: 20_000 });
    return [through, wrk('direct, iptables rules removed')];
  } finally {
    for (const ns of pods) iptables(ns, ['--proxy-uid', String(PROXY_UID)]);
  }
}

