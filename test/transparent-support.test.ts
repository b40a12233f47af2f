// The SO_ORIGINAL_DST addon and its wrapper, where no iptables rule is involved: loading,
// the explicit-mode fallback and its reason, and "not redirected" answers.
import t from 'tap';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { originalDestination, socketFd, transparentSupport } from '../proxy/transparent';
import { loadOriginalDstAddon } from '../proxy/transparent/addon';

const ROOT = path.join(__dirname, '..');
const BUILT = path.join(ROOT, 'proxy/transparent/native/build/Release/original_dst.node');
const linux = process.platform === 'linux';

async function connectedPair(): Promise<{ client: net.Socket; server: net.Socket; close(): void }> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise<void>((r) => client.once('connect', r));
  const server = await accepted;
  return { client, server, close: () => { client.destroy(); server.destroy(); srv.close(); } };
}

t.test('the addon is built by npm install on Linux and loads', { skip: linux ? false : 'SO_ORIGINAL_DST is Linux only' }, async (t) => {
  t.ok(fs.existsSync(BUILT), `${path.relative(ROOT, BUILT)} exists (npm install builds it with node-gyp)`);
  const support = transparentSupport();
  t.same(support, { available: true, reason: undefined });
});

t.test('a connection that was not redirected has no original destination', async (t) => {
  const pair = await connectedPair();
  t.teardown(pair.close);
  t.type(socketFd(pair.server), 'number');
  t.equal(originalDestination(pair.server), undefined, 'accepted socket');
  t.equal(originalDestination(pair.client), undefined, 'client socket');
});

t.test('a socket without a descriptor is answered, not thrown', async (t) => {
  const s = new net.Socket();
  t.equal(socketFd(s), undefined);
  t.equal(originalDestination(s), undefined);
});

t.test('the raw addon reports errors as values', { skip: linux && fs.existsSync(BUILT) ? false : 'addon not built' }, async (t) => {
  const { addon } = loadOriginalDstAddon();
  t.ok(addon);
  const notSocket = fs.openSync(__filename, 'r');
  t.teardown(() => fs.closeSync(notSocket));
  const answer = addon!.getOriginalDst(notSocket) as { errno?: number; error?: string };
  t.type(answer.errno, 'number', 'a file descriptor that is not a socket gives an errno');
  t.type(answer.error, 'string');
  t.throws(() => addon!.getOriginalDst(-1), { name: 'TypeError' });
  t.throws(() => (addon!.getOriginalDst as (x: unknown) => unknown)('3'), { name: 'TypeError' });
});

t.test('without the addon: explicit mode, and the reason is given', async (t) => {
  const mod = path.join(ROOT, 'dist/proxy/transparent/index.js');
  t.ok(fs.existsSync(mod), 'compiled module exists (npm test builds it first)');
  const r = spawnSync(process.execPath, ['-e', `
    const tr = require(${JSON.stringify(mod)});
    const net = require('net');
    console.log(JSON.stringify({ support: tr.transparentSupport(), dst: tr.originalDestination(new net.Socket()) ?? null }));
  `], { encoding: 'utf8', env: { PATH: process.env.PATH, PILLION_ORIGINAL_DST_ADDON: '/nonexistent/original_dst.node' } });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.equal(out.support.available, false);
  t.match(out.support.reason, linux ? /not built/ : /Linux/);
  t.equal(out.dst, null);
});

/** `pillion proxy` on ephemeral ports; resolves with its admin port once it listens. */
async function startProxy(env: NodeJS.ProcessEnv): Promise<{ admin: number; stop(): Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/pillion.js'), 'proxy', '--service', 'transparent-test',
    '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const stop = () => new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    child.once('exit', () => r());
    child.kill('SIGKILL');
  });
  let err = '';
  const admin = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start: ${err}`)), 15_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d;
      const m = /"msg":"listening".*"admin":(\d+)/.exec(err);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.once('exit', () => { clearTimeout(timer); reject(new Error(`proxy exited: ${err}`)); });
  }).catch(async (e) => { await stop(); throw e; });
  return { admin, stop };
}

async function transparentInDump(admin: number): Promise<Record<string, unknown>> {
  const res = await fetch(`http://127.0.0.1:${admin}/config_dump`);
  return ((await res.json()) as { transparent: Record<string, unknown> }).transparent;
}

t.test('/config_dump says whether the proxy can run transparently, and why not', async (t) => {
  const without = await startProxy({ PATH: process.env.PATH, PILLION_ORIGINAL_DST_ADDON: '/nonexistent/original_dst.node' });
  t.teardown(without.stop);
  t.match(await transparentInDump(without.admin), { available: false, reason: linux ? /not built/ : /Linux/, mode: 'explicit' });
  if (linux && fs.existsSync(BUILT)) {
    const withAddon = await startProxy({ PATH: process.env.PATH });
    t.teardown(withAddon.stop);
    t.same(await transparentInDump(withAddon.admin), { available: true });
  }
});
