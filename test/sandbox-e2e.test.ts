// End to end in `pillion sandbox` (root + iptables): plain curl inside the frontend pod
// reaches the backend through both sidecars, with nobody configured to use a proxy.
// Everything runs in namespaces the sandbox creates; `down` must leave nothing behind.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { SIDECAR_NODE_FLAGS } from '../proxy/runtime/node-flags';

const ROOT = path.join(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'pillion.js');
const ADDON = path.join(ROOT, 'proxy/transparent/native/build/Release/original_dst.node');
const STATE = `/tmp/pillion-sandbox-test-${process.pid}`;
const FRONTEND = 'pillion-frontend';
const BACKEND = 'pillion-backend';
const FRONTEND_IP = '10.251.0.11';

function sh(cmd: string, args: string[], timeoutMs = 30_000) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? (r.error ? String(r.error) : '') };
}

/** The CLI with a clean environment: tap's NODE_OPTIONS hooks must not reach the pods. */
function pillion(args: string[], timeoutMs = 90_000) {
  return sh('env', ['-i', `PATH=${process.env.PATH}`, process.execPath, BIN, ...args], timeoutMs);
}

function namespaces(): string[] {
  return sh('ip', ['netns', 'list']).out.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean);
}

function unavailable(): string | false {
  if (process.platform !== 'linux') return 'needs Linux network namespaces';
  if (process.geteuid?.() !== 0) return 'needs root (network namespaces, iptables); runs in CI';
  for (const [cmd, args] of [['ip', ['-V']], ['iptables', ['--version']], ['setpriv', ['--version']], ['curl', ['--version']]] as const) {
    if (sh(cmd, [...args]).code !== 0) return `needs ${cmd} on PATH (CI installs it)`;
  }
  if (!fs.existsSync(ADDON)) return 'the SO_ORIGINAL_DST addon is not built (npm install could not compile it)';
  if (namespaces().some((n) => n === 'pillion-net' || n === FRONTEND || n === BACKEND)) return 'a sandbox is already up on this machine (pillion sandbox down first)';
  return false;
}

function curlIn(ns: string, args: string[]) {
  // --noproxy '*': the app side uses no proxy settings at all; interception does the work.
  return sh('ip', ['netns', 'exec', ns, 'curl', '-sS', '--noproxy', '*', '-m', '10', ...args]);
}

interface Reply { status: number; headers: Record<string, string>; body: string }

/** `curl -D -` output (possibly several responses) as replies. */
function parseReplies(text: string): Reply[] {
  return text.split(/(?=^HTTP\/1\.1 )/m).filter((b) => b.startsWith('HTTP/1.1 ')).map((block) => {
    const [head, ...rest] = block.split('\r\n\r\n');
    const lines = head!.split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    return { status: Number(lines[0]!.split(' ')[1]), headers, body: rest.join('\r\n\r\n') };
  });
}

function metric(ns: string, name: string, labels: Record<string, string>): number {
  const text = curlIn(ns, ['http://127.0.0.1:15000/stats/prometheus']).out;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function redirectCount(ns: string, chain: string): number {
  const out = sh('ip', ['netns', 'exec', ns, 'iptables', '-t', 'nat', '-L', chain, '-v', '-x', '-n']).out;
  const row = out.split('\n').find((l) => /^\s*\d+\s+\d+\s+REDIRECT/.test(l));
  return row ? Number(row.trim().split(/\s+/)[0]) : NaN;
}

async function accessLogLine(file: string, match: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    for (const l of text.split('\n')) {
      if (!l.startsWith('{')) continue;
      const e = JSON.parse(l) as Record<string, unknown>;
      if (match(e)) return e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

// Decided once, before either test builds anything.
const SKIP = unavailable();

t.test('sandbox: transparent interception end to end', { skip: SKIP }, async (t) => {
  fs.rmSync(STATE, { recursive: true, force: true });
  let downDone = false;
  t.teardown(() => {
    if (!downDone) pillion(['sandbox', 'down', '--state-dir', STATE]);
  });

  const up = pillion(['sandbox', 'up', '--state-dir', STATE]);
  t.equal(up.code, 0, `sandbox up: ${up.err}`);
  if (up.code !== 0) return;
  t.match(up.out, /ip netns exec pillion-frontend curl -s http:\/\/backend:8080\//);
  const state = JSON.parse(fs.readFileSync(path.join(STATE, 'state.json'), 'utf8'));
  const logs = path.join(STATE, 'logs');

  t.test('the sidecars run as UID 1337 and subscribe to the control server', async (t) => {
    for (const role of ['frontend-sidecar', 'backend-sidecar']) {
      const pid = state.processes.find((p: { role: string }) => p.role === role).pid;
      const uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1];
      t.equal(uid, '1337', role);
      // Started as a pod's sidecar is (proxy/runtime/node-flags.ts).
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      t.ok(SIDECAR_NODE_FLAGS.every((f) => argv.includes(f)), `${role} runs with ${SIDECAR_NODE_FLAGS.join(' ')}`);
    }
    const dump = JSON.parse(curlIn(BACKEND, ['http://127.0.0.1:15000/config_dump']).out);
    t.equal(dump.source, 'control');
    t.ok(dump.policies.some((p: { service: string }) => p.service === 'backend'), 'the backend policy was pushed');
    t.same(dump.transparent, { available: true });
  });

  t.test('plain curl goes through the frontend\'s outbound and the backend\'s inbound sidecar', async (t) => {
    const outBefore = metric(FRONTEND, 'pillion_requests_total', { direction: 'outbound', service: 'backend', code: '200' });
    const inBefore = metric(BACKEND, 'pillion_requests_total', { direction: 'inbound', service: 'backend', code: '200' });
    const redirectBefore = redirectCount(FRONTEND, 'PILLION_REDIRECT');
    const inRedirectBefore = redirectCount(BACKEND, 'PILLION_IN_REDIRECT');

    const r = curlIn(FRONTEND, ['-D', '-', 'http://backend:8080/e2e']);
    const [reply] = parseReplies(r.out);
    t.equal(reply?.status, 200, r.err);
    const seen = JSON.parse(reply!.body);
    t.equal(seen.service, 'backend');
    t.equal(seen.path, '/e2e');
    t.equal(seen.remoteAddress, '127.0.0.1', 'the app is called by its own sidecar');
    t.match(seen.headers['x-forwarded-for'], FRONTEND_IP, 'the backend app sees the caller in x-forwarded-for');
    const requestId = seen.headers['x-request-id'];
    t.type(requestId, 'string');

    t.equal(metric(FRONTEND, 'pillion_requests_total', { direction: 'outbound', service: 'backend', code: '200' }) - outBefore, 1, 'frontend sidecar counted it outbound');
    t.equal(metric(BACKEND, 'pillion_requests_total', { direction: 'inbound', service: 'backend', code: '200' }) - inBefore, 1, 'backend sidecar counted it inbound');
    const out = await accessLogLine(path.join(logs, 'frontend-sidecar.out.log'), (e) => e.path === '/e2e');
    t.match(out, { direction: 'outbound', service: 'backend', status: 200, request_id: requestId, upstream: '10.251.0.12:8080' }, 'frontend access log');
    const inb = await accessLogLine(path.join(logs, 'backend-sidecar.out.log'), (e) => e.path === '/e2e');
    t.match(inb, { direction: 'inbound', service: 'backend', status: 200, request_id: requestId }, 'backend access log');
    // One connection from curl, one redirect each: the sidecars' own upstream connections
    // were not redirected back into themselves (that would count twice, or loop).
    t.equal(redirectCount(FRONTEND, 'PILLION_REDIRECT') - redirectBefore, 1, 'frontend: one outbound redirect');
    // The frontend sidecar may reuse a keep-alive connection to the backend: at most one new one.
    t.ok(redirectCount(BACKEND, 'PILLION_IN_REDIRECT') - inRedirectBefore <= 1, 'backend: at most one inbound redirect');
  });

  t.test('the backend\'s rate limit answers 429 with x-pillion-reason', async (t) => {
    const urls = Array.from({ length: 8 }, () => 'http://backend:8080/limited');
    const r = curlIn(FRONTEND, ['-D', '-', ...urls.flatMap((u) => ['-o', '/dev/null', u])]);
    const replies = parseReplies(r.out);
    t.equal(replies.length, 8, r.err);
    t.equal(replies[0]!.status, 200, 'within the burst');
    const limited = replies.filter((x) => x.status === 429);
    t.ok(limited.length >= 1, `some of 8 quick requests are limited (burst 3, 2/s): ${replies.map((x) => x.status).join(' ')}`);
    t.equal(limited[0]?.headers['x-pillion-reason'], 'rate-limited');
    t.ok(limited[0]?.headers['retry-after'], 'retry-after');
    t.ok(metric(BACKEND, 'pillion_requests_total', { direction: 'inbound', code: '429', reason: 'rate-limited' }) >= limited.length, 'counted by the backend sidecar');
  });

  t.test('the frontend\'s breaker opens when the backend fails', async (t) => {
    const urls = Array.from({ length: 20 }, () => 'http://backend:8080/status/500');
    const r = curlIn(FRONTEND, ['-D', '-', ...urls.flatMap((u) => ['-o', '/dev/null', u])]);
    const replies = parseReplies(r.out);
    t.equal(replies[0]?.status, 500, 'the backend\'s failure passes through');
    const backendBefore = metric(BACKEND, 'pillion_requests_total', { direction: 'inbound' });
    const after = parseReplies(curlIn(FRONTEND, ['-D', '-', 'http://backend:8080/after-failures']).out)[0];
    t.equal(after?.status, 503);
    t.equal(after?.headers['x-pillion-reason'], 'circuit-open');
    t.equal(metric(FRONTEND, 'pillion_circuit_state', { service: 'backend' }), 1, 'pillion_circuit_state is open');
    t.equal(metric(BACKEND, 'pillion_requests_total', { direction: 'inbound' }) - backendBefore, 0, 'the backend was not contacted while open');
  });

  t.test('down removes everything up made', async (t) => {
    const pids: number[] = state.processes.map((p: { pid: number }) => p.pid);
    const down = pillion(['sandbox', 'down', '--state-dir', STATE]);
    downDone = true;
    t.equal(down.code, 0, down.err);
    const left = namespaces().filter((n) => ['pillion-net', FRONTEND, BACKEND].includes(n));
    t.same(left, [], 'no namespaces left');
    for (const ns of ['pillion-net', FRONTEND, BACKEND]) t.notOk(fs.existsSync(`/etc/netns/${ns}`), `/etc/netns/${ns} removed`);
    t.notOk(fs.existsSync(STATE), 'state directory removed');
    t.same(pids.filter((pid) => fs.existsSync(`/proc/${pid}`)), [], 'no sandbox process left');
  });
});

t.test('sandbox: a failed up removes what it made', { skip: SKIP }, async (t) => {
  const dir = `${STATE}-broken`;
  const topo = `${dir}.yaml`;
  fs.writeFileSync(topo, 'pods:\n  - name: broken\n    port: 8080\n    command: ["/bin/sh", "-c", "exit 3"]\n');
  t.teardown(() => {
    pillion(['sandbox', 'down', '--state-dir', dir]);
    fs.rmSync(topo, { force: true });
  });
  const up = pillion(['sandbox', 'up', '-f', topo, '--state-dir', dir, '--config-source', 'file']);
  t.equal(up.code, 1);
  t.match(up.err, /pillion sandbox: the app in pillion-broken did not answer/);
  t.same(namespaces().filter((n) => n === 'pillion-broken' || n === 'pillion-net'), [], 'no namespace left');
  t.notOk(fs.existsSync('/etc/netns/pillion-broken'));
  t.notOk(fs.existsSync(dir), 'state directory removed');
  const down = pillion(['sandbox', 'down', '--state-dir', dir]);
  t.equal(down.code, 0);
  t.match(down.err, /nothing to remove/);
});

t.test('sandbox: down after an up that was killed half-way', { skip: SKIP }, async (t) => {
  const dir = `${STATE}-killed`;
  t.teardown(() => { pillion(['sandbox', 'down', '--state-dir', dir]); });
  const child = spawn('env', ['-i', `PATH=${process.env.PATH}`, process.execPath, BIN, 'sandbox', 'up', '--state-dir', dir], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  // Mid-build: after the namespaces, while processes are being started or waited for.
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && !fs.existsSync('/etc/netns/pillion-backend')) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  child.kill('SIGKILL');
  await exited;
  t.ok(fs.existsSync(path.join(dir, 'state.json')), 'the state file survived the kill');
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8'));
  t.ok(state.namespaces.length > 0, `the killed up had made namespaces: ${state.namespaces.join(' ')}`);
  const down = pillion(['sandbox', 'down', '--state-dir', dir]);
  t.equal(down.code, 0, down.err);
  t.same(namespaces().filter((n) => ['pillion-net', FRONTEND, BACKEND].includes(n)), [], 'no namespace left');
  for (const ns of ['pillion-net', FRONTEND, BACKEND]) t.notOk(fs.existsSync(`/etc/netns/${ns}`), `/etc/netns/${ns} removed`);
  t.same(state.processes.map((p: { pid: number }) => p.pid).filter((pid: number) => fs.existsSync(`/proc/${pid}`)), [], 'no process left');
  t.notOk(fs.existsSync(dir), 'state directory removed');
});
