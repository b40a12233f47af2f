// Crash safety: the control server is SIGKILLed repeatedly while a client applies in a loop;
// after each restart the history is intact, versions strictly increase, and every version
// the client saw acknowledged is there, whole.
import t from 'tap';
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const BIN = path.join(__dirname, '..', 'bin', 'pillion.js');
const ROUNDS = 6;

const policy = (name: string, service: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name }, spec: { service, ...extra },
});

function startControl(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'control', '--port', '0', '--host', '127.0.0.1', '--data', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`control server did not start: ${buf}`)); }, 10_000);
    child.stderr!.on('data', (d) => {
      buf += d;
      const m = /"msg":"control server listening".*?"url":"([^"]+)"/.exec(buf);
      if (m) { clearTimeout(timer); resolve({ child, url: m[1]! }); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`control server exited ${code}: ${buf}`)); });
  });
}

t.test('SIGKILL during applies loses no acknowledged version', async (t) => {
  if (!fs.existsSync(path.join(__dirname, '..', 'dist', 'cli', 'main.js'))) {
    t.fail('dist/ is not built: run `npm run build` first');
    return;
  }
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-crash-'));
  let current: ChildProcess | undefined;
  t.teardown(() => { current?.kill('SIGKILL'); fs.rmSync(dataDir, { recursive: true, force: true }); });
  const acked = new Map<number, number>(); // version -> n (the timeout the apply carried)
  let n = 0;
  let token = '';
  let previousHistory: number[] = [];

  for (let round = 0; round < ROUNDS; round++) {
    const { child, url } = await startControl(dataDir);
    current = child;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    token ||= fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    const call = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(url + p, { method, headers: { authorization: `Bearer ${token}` }, body: body && JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as any };
    };

    // After the restart: nothing lost, nothing reordered, every acknowledged version whole.
    const history = (await call('GET', '/v1/history')).body.versions.map((v: any) => v.version) as number[];
    const ascending = [...history].reverse();
    t.ok(ascending.every((v, i) => i === 0 || v > ascending[i - 1]!), `round ${round}: versions strictly increase`);
    t.ok(previousHistory.every((v) => history.includes(v)), `round ${round}: the history before the kill is all there`);
    let whole = 0;
    for (const [version, value] of acked) {
      const r = await call('GET', `/v1/history/${version}`);
      if (r.status === 200 && JSON.stringify(r.body.documents) === JSON.stringify([policy('crash', 'crash', { timeout: `${value}ms` }), policy('keep', 'keep')])) whole++;
    }
    t.equal(whole, acked.size, `round ${round}: all ${acked.size} acknowledged versions are present and whole`);
    if (round === 0) await call('POST', '/v1/apply', { documents: [policy('keep', 'keep')] });
    previousHistory = (await call('GET', '/v1/history')).body.versions.map((v: any) => v.version);
    if (round === ROUNDS - 1) {
      child.kill('SIGTERM');
      await exited;
      break;
    }

    // Apply in a loop; kill at a random moment, in the middle of whatever is in flight.
    const killAfter = 40 + Math.floor(Math.random() * 200);
    const killer = setTimeout(() => child.kill('SIGKILL'), killAfter);
    const deadline = Date.now() + 3000;
    let lastVersion = Math.max(0, ...previousHistory);
    let notIncreasing = 0;
    while (Date.now() < deadline) {
      const value = ++n;
      let r;
      try {
        r = await call('POST', '/v1/apply', { documents: [policy('crash', 'crash', { timeout: `${value}ms` })] });
      } catch {
        break; // the server is gone
      }
      if (r.status !== 200) { t.fail(`apply answered ${r.status}`); break; }
      if (!(r.body.version > lastVersion)) notIncreasing++;
      lastVersion = r.body.version;
      acked.set(r.body.version, value);
    }
    clearTimeout(killer);
    t.equal(notIncreasing, 0, `round ${round}: each acknowledged version is above every earlier one`);
    child.kill('SIGKILL');
    await exited;
  }
  t.ok(acked.size >= ROUNDS, `applies were acknowledged between kills (${acked.size})`);
});
