// Real interception in two network namespaces this test creates (`pillion-t*`): a "client"
// and a "pod" joined by a veth pair, `pillion init-iptables` inside the pod, and small TCP
// servers that answer with where the connection landed and its SO_ORIGINAL_DST.
import t from 'tap';
import path from 'node:path';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';

const ROOT = path.join(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'pillion.js');
const TRANSPARENT = path.join(ROOT, 'dist/proxy/transparent/index.js');
const NODE = process.execPath;
const CLEAN_ENV = ['env', '-i', `PATH=${process.env.PATH}`];

function sh(cmd: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? (r.error ? String(r.error) : '') };
}

function unavailable(): string | false {
  if (process.platform !== 'linux') return 'needs Linux network namespaces';
  if (process.geteuid?.() !== 0) return 'needs root to create network namespaces and iptables rules (runs in CI)';
  if (sh('ip', ['-V']).code !== 0) return 'needs iproute2 (ip)';
  if (sh('iptables', ['--version']).code !== 0) return 'needs iptables on PATH (apt-get install iptables; CI installs it)';
  if (sh('ip6tables', ['--version']).code !== 0) return 'needs ip6tables on PATH (part of the iptables package)';
  if (sh('setpriv', ['--version']).code !== 0) return 'needs setpriv (util-linux)';
  return false;
}

const suffix = String(process.pid % 100000);
const POD = `pillion-tp${suffix}`;
const CLIENT = `pillion-tc${suffix}`;
const POD_IP = '10.252.0.2';
const CLIENT_IP = '10.252.0.1';
const POD_IP6 = 'fd00:252::2';
const CLIENT_IP6 = 'fd00:252::1';

// Answers each connection with one JSON line: which namespace and port took it, and the
// original destination the wrapper recovers (null when not redirected).
const SERVER = `
const net = require('net');
const { originalDestination } = require(process.argv[1]);
const label = process.argv[2];
const listens = process.argv[3].split(',');
let pending = listens.length;
for (const l of listens) {
  const i = l.lastIndexOf(':');
  const host = l.slice(0, i);
  net.createServer((s) => {
    s.end(JSON.stringify({ ns: label, port: s.localPort, original: originalDestination(s) ?? null }) + '\\n');
  }).listen({ port: Number(l.slice(i + 1)), host, ipv6Only: host.includes(':') }, () => { if (--pending === 0) console.log('ready'); });
}
`;

const CLIENT_SCRIPT = `
const net = require('net');
const s = net.connect(Number(process.argv[2]), process.argv[1]);
let data = '';
s.setTimeout(3000, () => { console.log(JSON.stringify({ error: 'timeout' })); process.exit(0); });
s.on('data', (d) => { data += d; });
s.on('end', () => { console.log(data.trim()); process.exit(0); });
s.on('error', (e) => { console.log(JSON.stringify({ error: e.code })); process.exit(0); });
`;

function connectFrom(ns: string, host: string, port: number, uid?: number): Record<string, unknown> {
  const asUid = uid === undefined ? [] : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];
  const r = sh('ip', ['netns', 'exec', ns, ...asUid, ...CLEAN_ENV, NODE, '-e', CLIENT_SCRIPT, host, String(port)]);
  try {
    return JSON.parse(r.out.trim());
  } catch {
    return { error: `no answer: ${r.err.trim()}` };
  }
}

function natListing(ns: string, tool = 'iptables'): string {
  return sh('ip', ['netns', 'exec', ns, tool, '-t', 'nat', '-S']).out;
}

function initIptables(ns: string, args: string[]) {
  return sh('ip', ['netns', 'exec', ns, ...CLEAN_ENV, NODE, BIN, 'init-iptables', ...args]);
}

t.test('interception in a pod namespace', { skip: unavailable() }, async (t) => {
  const servers: ChildProcess[] = [];
  t.teardown(async () => {
    for (const s of servers) s.kill('SIGKILL');
    await Promise.all(servers.map((s) => new Promise((r) => (s.exitCode !== null || s.signalCode !== null ? r(null) : s.once('exit', r)))));
    sh('ip', ['netns', 'del', POD]);
    sh('ip', ['netns', 'del', CLIENT]);
  });
  for (const ns of [POD, CLIENT]) {
    sh('ip', ['netns', 'del', ns]); // a leftover of a killed earlier run with the same PID
    const add = sh('ip', ['netns', 'add', ns]);
    t.equal(add.code, 0, `create ${ns} ${add.err}`);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  }
  const steps: [string, string[]][] = [
    ['ip', ['-n', POD, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', CLIENT]],
    ['ip', ['-n', POD, 'addr', 'add', `${POD_IP}/24`, 'dev', 'eth0']],
    ['ip', ['-n', CLIENT, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'eth0']],
    ['ip', ['-n', POD, 'addr', 'add', `${POD_IP6}/64`, 'dev', 'eth0', 'nodad']],
    ['ip', ['-n', CLIENT, 'addr', 'add', `${CLIENT_IP6}/64`, 'dev', 'eth0', 'nodad']],
    ['ip', ['-n', POD, 'link', 'set', 'eth0', 'up']],
    ['ip', ['-n', CLIENT, 'link', 'set', 'eth0', 'up']],
  ];
  for (const [cmd, args] of steps) {
    const r = sh(cmd, args);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.err}`);
  }

  const before = natListing(POD);
  const init = initIptables(POD, ['--ipv6', '--skip-inbound-ports', '7000', '--skip-outbound-ports', '7001']);
  t.equal(init.code, 0, `init-iptables: ${init.err}`);
  const once = natListing(POD);
  const once6 = natListing(POD, 'ip6tables');
  t.match(once6, /-A PILLION_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/, '--ipv6 installs the IPv6 rules too');
  t.equal(initIptables(POD, ['--ipv6', '--skip-inbound-ports', '7000', '--skip-outbound-ports', '7001']).code, 0, 'second run');
  t.equal(natListing(POD, 'ip6tables'), once6, 'IPv6 rules: one set after two runs');
  t.equal(natListing(POD), once, 'running it twice leaves one set of rules');
  t.equal(once.split('\n').filter((l) => l === '-A PREROUTING -p tcp -j PILLION_INBOUND').length, 1);

  const startServer = async (ns: string, label: string, listens: string) => {
    const child = spawn('ip', ['netns', 'exec', ns, ...CLEAN_ENV, NODE, '-e', SERVER, TRANSPARENT, label, listens], { stdio: ['ignore', 'pipe', 'pipe'] });
    servers.push(child);
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${label} servers did not start: ${err}`)), 10_000);
      child.stdout!.once('data', () => { clearTimeout(timer); resolve(); });
      child.once('exit', () => { clearTimeout(timer); reject(new Error(`${label} servers exited: ${err}`)); });
    });
  };
  await startServer(POD, 'pod', '127.0.0.1:15001,0.0.0.0:15006,0.0.0.0:8080,0.0.0.0:7000,::1:15001,:::15006');
  await startServer(CLIENT, 'client', '0.0.0.0:8080,0.0.0.0:7001,0.0.0.0:15006,:::8080');

  t.same(connectFrom(CLIENT, POD_IP, 8080), { ns: 'pod', port: 15006, original: { host: POD_IP, port: 8080 } },
    'inbound TCP goes to the inbound listener, which recovers the port the caller dialled');
  t.same(connectFrom(CLIENT, POD_IP, 7000), { ns: 'pod', port: 7000, original: null }, '--skip-inbound-ports');
  t.same(connectFrom(CLIENT, POD_IP, 15006), { ns: 'pod', port: 15006, original: null }, 'the proxy port itself is not redirected');

  t.same(connectFrom(POD, CLIENT_IP, 8080), { ns: 'pod', port: 15001, original: { host: CLIENT_IP, port: 8080 } },
    'the app\'s outbound TCP goes to the outbound listener with its original destination');
  t.same(connectFrom(POD, CLIENT_IP, 8080, 1337), { ns: 'client', port: 8080, original: null }, 'the proxy UID is never redirected');
  t.same(connectFrom(POD, CLIENT_IP, 8080, 1000), { ns: 'pod', port: 15001, original: { host: CLIENT_IP, port: 8080 } }, 'any other UID is');
  t.same(connectFrom(POD, CLIENT_IP, 7001), { ns: 'client', port: 7001, original: null }, '--skip-outbound-ports');
  t.same(connectFrom(POD, CLIENT_IP, 15006), { ns: 'client', port: 15006, original: null }, 'proxy ports are not redirected outbound');
  t.same(connectFrom(POD, '127.0.0.1', 8080), { ns: 'pod', port: 8080, original: null }, 'loopback is not redirected');
  t.same(connectFrom(POD, POD_IP, 8080), { ns: 'pod', port: 8080, original: null }, 'the app calling its own pod IP goes straight there');
  t.same(connectFrom(POD, POD_IP, 8080, 1337), { ns: 'pod', port: 15006, original: { host: POD_IP, port: 8080 } },
    'the proxy calling its own pod IP takes the inbound path');

  t.same(connectFrom(CLIENT, POD_IP6, 8080), { ns: 'pod', port: 15006, original: { host: POD_IP6, port: 8080 } }, 'IPv6 inbound (IP6T_SO_ORIGINAL_DST)');
  t.same(connectFrom(POD, CLIENT_IP6, 8080), { ns: 'pod', port: 15001, original: { host: CLIENT_IP6, port: 8080 } }, 'IPv6 outbound');
  t.same(connectFrom(POD, CLIENT_IP6, 8080, 1337), { ns: 'client', port: 8080, original: null }, 'IPv6: the proxy UID is never redirected');

  // Someone else's rules must survive our cleanup.
  const foreign: string[][] = [['-t', 'nat', '-N', 'OTHER_CHAIN'], ['-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '-j', 'OTHER_CHAIN'], ['-t', 'nat', '-A', 'OTHER_CHAIN', '-p', 'udp', '-j', 'RETURN']];
  for (const args of foreign) t.equal(sh('ip', ['netns', 'exec', POD, 'iptables', ...args]).code, 0, `iptables ${args.join(' ')}`);
  const withForeign = natListing(POD);
  const cleanup = initIptables(POD, ['--cleanup']);
  t.equal(cleanup.code, 0, cleanup.err);
  const after = natListing(POD);
  t.notMatch(after, /PILLION/, 'our chains and jumps are gone');
  t.same(after.split('\n').filter(Boolean), withForeign.split('\n').filter((l) => l && !l.includes('PILLION')), 'everything else is untouched');
  t.match(after, /-A OUTPUT -p udp -j OTHER_CHAIN/);
  t.ok(before.split('\n').filter(Boolean).every((l) => after.includes(l)), 'the original policy lines remain');
  t.same(connectFrom(POD, CLIENT_IP, 8080), { ns: 'client', port: 8080, original: null }, 'after cleanup nothing is redirected');
  t.notMatch(natListing(POD, 'ip6tables'), /PILLION/, 'cleanup removes the IPv6 rules too');
  t.equal(initIptables(POD, ['--cleanup']).code, 0, 'cleanup with nothing to remove succeeds');
});
