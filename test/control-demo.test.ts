// `pillion demo` end to end: it starts, the walkthrough's steps do what it says (429 from the
// rate limit, both sidecars SYNCED, an applied change arriving, the breaker opening), and
// Ctrl-C stops all of it.
import t from 'tap';
import { spawn, execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { SIDECAR_NODE_FLAGS } from '../proxy/runtime/node-flags';
import { processTree } from '../bench/proc';

const BIN = path.join(__dirname, '..', 'bin', 'pillion.js');
const OFFSETS = [0, 1, 6, 10, 20, 21, 26, 30, 31];

function free(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function pickBase(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    // Below the ephemeral range (32768+), so that no other test's outgoing connection takes one.
    const base = 20000 + 100 * Math.floor(Math.random() * 120);
    if ((await Promise.all(OFFSETS.map((o) => free(base + o)))).every(Boolean)) return base;
  }
  throw new Error('no free port range found');
}

const agent = new http.Agent({ keepAlive: true });
function get(port: number, p = '/', method = 'GET'): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, agent }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => { let body: any = text; try { body = JSON.parse(text); } catch { /* text */ } resolve({ status: res.statusCode!, body }); });
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function pillion(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, timeout: 20_000 },
    (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr })));
}

/** The command lines of a process and its descendants (Linux /proc). */
function treeArgvs(root: number): string[][] {
  return processTree(root).flatMap((pid) => {
    try {
      return [fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')];
    } catch {
      return []; // gone meanwhile
    }
  });
}

t.test('the demo mesh and its walkthrough', async (t) => {
  const base = await pickBase();
  const child = spawn(process.execPath, [BIN, 'demo', '--port-base', String(base)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => { child.kill('SIGKILL'); agent.destroy(); });
  const started = await Promise.race([
    new Promise<boolean>((resolve) => { const iv = setInterval(() => { if (out.includes('demo ready')) { clearInterval(iv); resolve(true); } }, 50); setTimeout(() => { clearInterval(iv); resolve(false); }, 40_000).unref(); }),
    exited.then(() => false),
  ]);
  if (!t.ok(started, 'the demo says it is ready')) { t.comment(out, err); return; }

  const fe = base + 6, feAdmin = base, beAdmin = base + 20, beApp = base + 31, control = `http://127.0.0.1:${base + 10}`;
  // Both sidecars are the demo's children, started as a pod's are (proxy/runtime/node-flags.ts).
  const sidecars = treeArgvs(child.pid!).filter((argv) => argv.includes('proxy'));
  t.equal(sidecars.length, 2, 'two sidecar processes');
  for (const argv of sidecars) t.ok(SIDECAR_NODE_FLAGS.every((f) => argv.includes(f)), `${argv[argv.indexOf('--service') + 1]}: ${SIDECAR_NODE_FLAGS.join(' ')}`);
  t.match(out, `control server     ${control}`);
  const tokenFile = /export PILLION_TOKEN=\$\(cat (\S+)\)/.exec(out)?.[1];
  const policyFile = /npx pillion apply -f (\S+)/.exec(out)?.[1];
  t.ok(tokenFile && policyFile, 'the walkthrough names the token file and the policy file');
  t.notMatch(out, fs.readFileSync(tokenFile!, 'utf8').trim(), 'the token itself is not printed');
  const env = { PILLION_TOKEN: fs.readFileSync(tokenFile!, 'utf8').trim() };

  // 1. A call through both sidecars.
  const first = await get(fe);
  t.same([first.status, first.body.backend?.status, first.body.backend?.body?.service], [200, 200, 'backend']);

  // 2. The rate limit (5/s, burst 10): a burst of 30 at once gets 429s from the backend's
  // sidecar. Sent concurrently so that a slow, shared machine cannot refill the bucket between them.
  const burst = await Promise.all(Array.from({ length: 30 }, (_, i) => get(fe, `/?i=${i}`)));
  const codes = burst.map((r) => r.status);
  const limited = burst.find((r) => r.status === 429)?.body;
  // 10 tokens, one spent by step 1, plus whatever refilled meanwhile.
  t.ok(codes.filter((c) => c === 200).length >= 9, `the burst allowance passes: ${codes.join(' ')}`);
  t.same([...new Set(codes)].sort(), [200, 429], 'nothing but 200 and 429');
  t.ok(codes.includes(429), `429 in the burst: ${codes.join(' ')}`);
  t.equal(limited?.backend?.reason, 'rate-limited');

  // 4. Both sidecars subscribed and SYNCED.
  let st = await pillion(['status', '--json', '--control', control], env);
  t.equal(st.code, 0, st.stderr);
  const rows = JSON.parse(st.stdout).proxies;
  t.same(rows.map((p: any) => [p.service, p.state, p.ackedVersion]), [['backend', 'SYNCED', 1], ['frontend', 'SYNCED', 1]]);

  // 5. Apply a change (a higher rate limit) and see it arrive in both sidecars.
  fs.writeFileSync(policyFile!, fs.readFileSync(policyFile!, 'utf8').replace('requestsPerSecond: 5,', 'requestsPerSecond: 500,'));
  const applied = await pillion(['apply', '-f', policyFile!, '--control', control], env);
  t.match(applied.stdout, 'trafficpolicy/backend configured\ntrafficpolicy/frontend unchanged\nversion 2\n');
  for (const admin of [feAdmin, beAdmin]) {
    let version: unknown;
    for (let i = 0; i < 100 && version !== 2; i++) {
      version = (await get(admin, '/config_dump')).body.version;
      if (version !== 2) await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(version, 2, `the sidecar with admin port ${admin} runs version 2`);
  }
  st = await pillion(['status', '--control', control], env);
  t.match(st.stdout, /backend-demo\s+backend\s+2\s+SYNCED/);
  t.match(st.stdout, /frontend-demo\s+frontend\s+2\s+SYNCED/);

  // 3. Make the backend fail: 500s pass through until the frontend's breaker opens.
  t.equal((await get(beApp, '/fail', 'POST')).status, 200);
  const seen: string[] = [];
  for (let i = 0; i < 40; i++) {
    const r = await get(fe);
    seen.push(`${r.status}${r.body.backend?.reason ? `:${r.body.backend.reason}` : ''}`);
    if (r.body.backend?.reason === 'circuit-open') break;
    await new Promise((res) => setTimeout(res, 50));
  }
  t.equal(seen[0], '500', 'failures pass through first');
  t.equal(seen[seen.length - 1], '503:circuit-open', `then the breaker opens: ${seen.join(' ')}`);
  const clusters = (await get(feAdmin, '/clusters')).body;
  t.equal(clusters.find((c: any) => c.service === 'backend' && c.direction === 'outbound')?.breaker, 'open');

  // Ctrl-C stops everything and removes the demo's temporary directory.
  child.kill('SIGINT');
  const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 15_000).unref())]);
  t.equal(code, 0, 'exits 0 on Ctrl-C');
  t.notOk(fs.existsSync(path.dirname(tokenFile!)), 'the temporary data directory is gone');
  t.same(await Promise.all(OFFSETS.map((o) => free(base + o))), OFFSETS.map(() => true), 'every port is free again');
});
