// `pillion sandbox up`: pods as network namespaces on a bridge, each with its app, the
// iptables step and a UID-1337 sidecar subscribed to a control server.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { netnsExists, run, SandboxError, tryRun } from './commands';
import { isRunning, startInNetns } from './processes';
import { waitForHttp } from './probe';
import { emptyState, readState, SandboxState, writeState } from './state';
import { subnetPrefix, Topology } from './topology';
import { teardown } from './down';
import { SIDECAR_NODE_FLAGS } from '../../proxy/runtime/node-flags';

export const NET_NS = 'pillion-net';
export const BRIDGE = 'pillion0';
export const PROXY_UID = 1337;
export const CONTROL_PORT = 15010;
const ETC_NETNS = '/etc/netns';

export type ConfigSource = 'control' | 'file';

export interface UpOptions {
  readonly topology: Topology;
  readonly stateDir: string;
  /** Checkout root: bin/pillion.js and dist/ (the compiled CLI) live there. */
  readonly root: string;
  /** control (default): sidecars subscribe to the sandbox's control server; file: --config. */
  readonly configSource: ConfigSource;
  readonly log: (line: string) => void;
}

export function podNetns(name: string): string {
  return `pillion-${name}`;
}

function preflight(o: UpOptions): void {
  if (process.geteuid?.() !== 0) throw new SandboxError('must run as root (it creates network namespaces and iptables rules)');
  for (const [cmd, args, pkg] of [['ip', ['-V'], 'iproute2'], ['iptables', ['--version'], 'iptables'], ['setpriv', ['--version'], 'util-linux']] as const) {
    if (tryRun(cmd, args).status !== 0) throw new SandboxError(`${cmd} not found on PATH; install ${pkg}`);
  }
  for (const f of ['dist/cli/main.js', 'dist/deploy/sandbox/demo-app.js']) {
    if (!fs.existsSync(path.join(o.root, f))) throw new SandboxError(`${f} is missing; run \`npm install\` (or \`npm run build\`) first`);
  }
  const existing = readState(o.stateDir);
  if (existing) throw new SandboxError(`a sandbox is already up (state in ${o.stateDir}); run \`pillion sandbox down\` first`);
  for (const ns of [NET_NS, ...o.topology.pods.map((p) => podNetns(p.name))]) {
    if (netnsExists(ns)) throw new SandboxError(`network namespace ${ns} already exists and was not made by this sandbox; remove it first`);
  }
}

export async function sandboxUp(o: UpOptions): Promise<SandboxState> {
  preflight(o);
  const createdDir = !fs.existsSync(o.stateDir);
  fs.mkdirSync(o.stateDir, { recursive: true, mode: 0o755 });
  const state = emptyState();
  state.createdStateDir = createdDir;
  const save = () => writeState(o.stateDir, state);
  save();
  try {
    await build(o, state, save);
    return state;
  } catch (err) {
    o.log(`sandbox up failed: ${(err as Error).message}; removing what it made`);
    await teardown(o.stateDir, state, o.log);
    throw err;
  }
}

async function build(o: UpOptions, state: SandboxState, save: () => void): Promise<void> {
  const { topology, root } = o;
  const prefix = subnetPrefix(topology.subnet);
  const gateway = `${prefix}1`;
  const node = process.execPath;
  const cli = path.join(root, 'bin', 'pillion.js');
  // Recorded before it is made: an `up` killed in between leaves nothing `down` cannot see.
  const addNetns = (ns: string) => {
    state.namespaces.push(ns);
    save();
    run('ip', ['netns', 'add', ns]);
    run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  };

  // The bridge lives in a namespace of its own, so the host's network is never touched.
  addNetns(NET_NS);
  run('ip', ['-n', NET_NS, 'link', 'add', BRIDGE, 'type', 'bridge']);
  run('ip', ['-n', NET_NS, 'addr', 'add', `${gateway}/24`, 'dev', BRIDGE]);
  run('ip', ['-n', NET_NS, 'link', 'set', BRIDGE, 'up']);

  const pods = topology.pods.map((p, i) => ({ ...p, ns: podNetns(p.name), ip: `${prefix}${11 + i}`, peer: `pv${i}` }));
  for (const pod of pods) {
    addNetns(pod.ns);
    run('ip', ['-n', pod.ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', pod.peer, 'netns', NET_NS]);
    run('ip', ['-n', NET_NS, 'link', 'set', pod.peer, 'master', BRIDGE]);
    run('ip', ['-n', NET_NS, 'link', 'set', pod.peer, 'up']);
    run('ip', ['-n', pod.ns, 'addr', 'add', `${pod.ip}/24`, 'dev', 'eth0']);
    run('ip', ['-n', pod.ns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', pod.ns, 'route', 'add', 'default', 'via', gateway]);
  }

  // Service names resolve through a hosts file that `ip netns exec` binds over /etc/hosts.
  const hosts = [
    '127.0.0.1 localhost',
    '::1 localhost',
    `${gateway} pillion-control`,
    ...pods.map((p) => `${p.ip} ${p.name} ${p.name}.default ${p.name}.default.svc ${p.name}.default.svc.cluster.local`),
    '',
  ].join('\n');
  if (!fs.existsSync(ETC_NETNS)) {
    state.etcDirs.push(ETC_NETNS);
    save();
    fs.mkdirSync(ETC_NETNS, { mode: 0o755 });
  }
  for (const ns of [NET_NS, ...pods.map((p) => p.ns)]) {
    const dir = path.join(ETC_NETNS, ns);
    if (!fs.existsSync(dir)) {
      state.etcDirs.push(dir);
      save();
      fs.mkdirSync(dir, { recursive: true });
    }
    fs.writeFileSync(path.join(dir, 'hosts'), hosts, { mode: 0o644 });
  }

  const logs = path.join(o.stateDir, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  const startLogged = (role: string, ns: string, argv: string[], uid?: number) => {
    const rec = startInNetns({
      role, netns: ns, argv, uid, cwd: root, env: podEnv(),
      stdoutFile: path.join(logs, `${role}.out.log`), stderrFile: path.join(logs, `${role}.err.log`),
    });
    state.processes.push(rec);
    save();
    return rec;
  };

  // Policies: applied to the control server (or written for --config).
  const policiesFile = path.join(o.stateDir, 'policies.yaml');
  fs.writeFileSync(policiesFile, topology.policies.map((d) => stringify(d)).join('---\n') || '# no policies\n', { mode: 0o644 });
  const controlUrl = `http://${gateway}:${CONTROL_PORT}`;
  let proxyToken: string | undefined;
  if (o.configSource === 'control') {
    const data = path.join(o.stateDir, 'control');
    startLogged('control', NET_NS, [node, cli, 'control', '--host', gateway, '--port', String(CONTROL_PORT), '--data', data]);
    const control = state.processes[state.processes.length - 1]!;
    if (!(await waitForHttp(NET_NS, `${controlUrl}/`, 15_000, undefined, () => isRunning(control)))) throw withLog(new SandboxError(`control server did not answer on ${controlUrl}`), logs, 'control');
    const admin = fs.readFileSync(path.join(data, 'admin.token'), 'utf8').trim();
    proxyToken = fs.readFileSync(path.join(data, 'proxy.token'), 'utf8').trim();
    if (topology.policies.length > 0) {
      run('ip', ['netns', 'exec', NET_NS, node, cli, 'apply', '-f', policiesFile, '--control', controlUrl], {
        env: podEnv({ PILLION_TOKEN: admin }),
      });
    }
  }

  for (const pod of pods) {
    const podDir = path.join(o.stateDir, 'pods', pod.name);
    fs.mkdirSync(path.join(podDir, 'cache'), { recursive: true });
    fs.chownSync(podDir, PROXY_UID, PROXY_UID);
    fs.chownSync(path.join(podDir, 'cache'), PROXY_UID, PROXY_UID);

    // Kubernetes order: the init step first, then the containers.
    run('ip', ['netns', 'exec', pod.ns, node, cli, 'init-iptables', '--proxy-uid', String(PROXY_UID)]);

    const appArgv = pod.command
      ? [...pod.command]
      : [node, path.join(root, 'dist/deploy/sandbox/demo-app.js'), '--name', pod.name, '--port', String(pod.port),
        ...pod.calls.flatMap((c) => ['--call', `http://${c}:${pods.find((p) => p.name === c)!.port}/`])];
    const appEnv = podEnv({ PORT: String(pod.port), SERVICE: pod.name });
    state.processes.push(startInNetns({
      role: `${pod.name}-app`, netns: pod.ns, argv: appArgv, cwd: root, env: appEnv,
      stdoutFile: path.join(logs, `${pod.name}-app.out.log`), stderrFile: path.join(logs, `${pod.name}-app.err.log`),
    }));
    save();

    const source = o.configSource === 'control'
      ? ['--control', controlUrl, '--token-file', writeProxyToken(podDir, proxyToken!)]
      : ['--config', policiesFile];
    startLogged(`${pod.name}-sidecar`, pod.ns, [
      node, ...SIDECAR_NODE_FLAGS, cli, 'proxy', '--service', pod.name, '--app', `127.0.0.1:${pod.port}`,
      '--cache-dir', path.join(podDir, 'cache'), ...source,
    ], PROXY_UID);
  }

  const running = (role: string) => () => state.processes.filter((p) => p.role === role).every(isRunning);
  for (const pod of pods) {
    if (!(await waitForHttp(pod.ns, 'http://127.0.0.1:15000/ready', 20_000, 200, running(`${pod.name}-sidecar`)))) {
      throw withLog(new SandboxError(`the sidecar in ${pod.ns} did not become ready`), logs, `${pod.name}-sidecar`);
    }
    if (!(await waitForHttp(pod.ns, `http://127.0.0.1:${pod.port}/`, 10_000, undefined, running(`${pod.name}-app`)))) {
      throw withLog(new SandboxError(`the app in ${pod.ns} did not answer on port ${pod.port}`), logs, `${pod.name}-app`);
    }
  }
  state.ready = {
    controlUrl: o.configSource === 'control' ? controlUrl : '',
    pods: pods.map((p) => ({ name: p.name, ip: p.ip, port: p.port })),
  };
  save();
}

/**
 * What the pods' processes inherit: not the caller's whole environment (its proxy settings,
 * tokens, NODE_OPTIONS hooks), only what a pod would be given.
 */
export function podEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: '/tmp' };
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OTEL_|PILLION_REDIS_URL$|LANG$|TZ$)/.test(k) && v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

function writeProxyToken(podDir: string, token: string): string {
  const file = path.join(podDir, 'proxy.token');
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600 });
  fs.chownSync(file, PROXY_UID, PROXY_UID);
  return file;
}

/** Attach the last lines of a process's stderr: the reason is usually there. */
function withLog(err: SandboxError, logs: string, role: string): SandboxError {
  let tail = '';
  try {
    tail = fs.readFileSync(path.join(logs, `${role}.err.log`), 'utf8').trim().split('\n').slice(-3).join(' | ');
  } catch { /* no log */ }
  return tail ? new SandboxError(`${err.message} (${role}: ${tail.slice(0, 600)})`) : err;
}

