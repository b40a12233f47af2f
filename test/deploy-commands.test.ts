// The commands that the manifests and the injected containers run, run for real: every flag
// they pass must be accepted by today's CLI, the probes must reach what they probe, and the
// control Deployment's probes must answer. Paths and ports are swapped for temporary ones and
// everything stays on 127.0.0.1.
import t from 'tap';
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import { rootCertificates } from 'node:tls';
import { parseAllDocuments } from 'yaml';
import { injectOptions, injectPodTemplate } from '../deploy/inject';

type Obj = Record<string, any>;
const root = path.join(__dirname, '..');
const bin = path.join(root, 'bin', 'pillion.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-deploy-cmd-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const decision = injectPodTemplate({
  metadata: { labels: { app: 'web' }, annotations: { 'pillion.dev/skip-inbound-ports': '9000:9100', 'pillion.dev/skip-outbound-ports': '5432' } },
  spec: { containers: [{ name: 'web', image: 'web' }] },
}, injectOptions(), 'web');
if (!decision.injected) throw new Error('not injected');
const [init, proxy] = decision.template.spec.initContainers as Obj[];
const classic = injectPodTemplate({ metadata: { labels: { app: 'web' }, annotations: { 'pillion.dev/native-sidecar': 'false' } }, spec: { containers: [{ name: 'web', image: 'web' }] } }, injectOptions());
const classicProxy = classic.injected ? (classic.template.spec.containers[0] as Obj) : undefined;

/** Replace the value after each flag. */
function withFlags(args: string[], values: Record<string, string>): string[] {
  const out = [...args];
  for (const [flag, value] of Object.entries(values)) {
    const i = out.indexOf(flag);
    if (i < 0) throw new Error(`${flag} not in ${out.join(' ')}`);
    out[i + 1] = value;
  }
  return out;
}

function start(args: string[]): { child: ChildProcess; waitFor(re: RegExp): Promise<RegExpExecArray>; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  child.stderr!.on('data', (c: Buffer) => {
    log += c.toString('utf8');
    for (const w of [...waiters]) {
      const m = w.re.exec(log);
      if (m) { waiters.splice(waiters.indexOf(w), 1); w.resolve(m); }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    waitFor: (re) => new Promise((resolve, reject) => {
      const m = re.exec(log);
      if (m) return resolve(m);
      const timer = setTimeout(() => reject(new Error(`no ${re} within 20 s; log: ${log}`)), 20_000);
      waiters.push({ re, resolve: (x) => { clearTimeout(timer); resolve(x); } });
      void exited.then((code) => { clearTimeout(timer); reject(new Error(`exited ${code} before ${re}; log: ${log}`)); });
    }),
  };
}

function probe(command: string[], adminPort: number): Promise<number | null> {
  const cmd = command.map((a) => a.replace(/port:15000\b/, `port:${adminPort}`));
  return new Promise((resolve) => {
    const c = spawn(cmd[0]!, cmd.slice(1), { stdio: 'ignore' });
    const timer = setTimeout(() => c.kill('SIGKILL'), 90_000);
    c.on('exit', (code) => { clearTimeout(timer); resolve(code); });
  });
}

async function stop(p: ReturnType<typeof start>): Promise<number | null> {
  p.child.kill('SIGTERM');
  return p.exited;
}

t.test('the injected init container\'s arguments are accepted by pillion init-iptables', async (t) => {
  t.same(init.command, ['pillion']);
  const r = spawnSync(process.execPath, [bin, ...init.args, '--dry-run'], { encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /iptables-restore/);
  t.match(r.stdout, /9000:9100/);
  t.match(r.stdout, /5432/);
});

t.test('the injected proxy\'s arguments start pillion proxy, and its probe sees it is not ready yet', async (t) => {
  fs.writeFileSync(path.join(tmp, 'token'), 'a'.repeat(32));
  fs.writeFileSync(path.join(tmp, 'ca.crt'), rootCertificates[0]!);
  const args = withFlags(proxy.args, {
    '--control': 'https://127.0.0.1:1', '--token-file': path.join(tmp, 'token'), '--ca-file': path.join(tmp, 'ca.crt'),
    '--cache-dir': path.join(tmp, 'cache'), '--inbound-port': '0', '--outbound-port': '0', '--admin-port': '0',
  });
  const p = start(args);
  t.teardown(() => { p.child.kill('SIGKILL'); });
  const m = await p.waitFor(/"msg":"listening".*"admin":(\d+)/);
  t.equal(await probe(proxy.startupProbe.exec.command, Number(m[1])), 1, 'no config yet (control unreachable, no cache): the startup probe fails');
  t.equal(await stop(p), 0, 'SIGTERM: clean exit');
});

t.test('the probes pass against a ready proxy', async (t) => {
  const policy = path.join(tmp, 'web.yaml');
  fs.writeFileSync(policy, 'apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec: {service: web}\n');
  const p = start(['proxy', '--service', 'web', '--config', policy, '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0']);
  t.teardown(() => { p.child.kill('SIGKILL'); });
  const admin = Number((await p.waitFor(/"msg":"listening".*"admin":(\d+)/))[1]);
  t.equal(await probe(proxy.startupProbe.exec.command, admin), 0, 'startup probe');
  t.equal(await probe(proxy.readinessProbe.exec.command, admin), 0, 'readiness probe');
  t.ok(classicProxy, 'classic variant injected');
  t.equal(await probe(classicProxy!.lifecycle.postStart.exec.command, admin), 0, 'classic postStart wait returns once ready');
  t.equal(await stop(p), 0);
});

t.test('the control Deployment\'s arguments start pillion control, and its probes answer', async (t) => {
  if (spawnSync('openssl', ['version']).status !== 0) return t.skip('openssl is not installed: generate-secrets.sh needs it (CI installs it)');
  const gen = spawnSync('sh', [path.join(root, 'deploy', 'kubernetes', 'generate-secrets.sh'), tmp], { encoding: 'utf8', timeout: 60_000 });
  t.equal(gen.status, 0, gen.stderr);
  const deployment = parseAllDocuments(fs.readFileSync(path.join(root, 'deploy', 'kubernetes', 'deployment.yaml'), 'utf8'))[0]!.toJS() as Obj;
  const c = deployment.spec.template.spec.containers[0];
  t.same(c.command, ['pillion']);
  fs.mkdirSync(path.join(tmp, 'data'));
  const args = [...withFlags(c.args, {
    '--port': '0', '--webhook-port': '0', '--data': path.join(tmp, 'data'),
    '--admin-token-file': path.join(tmp, 'tokens', 'admin.token'), '--proxy-token-file': path.join(tmp, 'tokens', 'proxy.token'),
    '--tls-cert': path.join(tmp, 'tls', 'tls.crt'), '--tls-key': path.join(tmp, 'tls', 'tls.key'),
  }), '--host', '127.0.0.1'];
  const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));
  const p = start(args);
  t.teardown(() => { p.child.kill('SIGKILL'); });
  const control = Number((await p.waitFor(/"msg":"control server listening".*?"port":(\d+)/))[1]);
  const webhook = Number((await p.waitFor(/"msg":"injection webhook listening".*?"port":(\d+)/))[1]);
  const ca = fs.readFileSync(path.join(tmp, 'tls', 'ca.crt'));
  const get = (port: number, urlPath: string) => new Promise<number>((resolve, reject) => {
    https.get({ host: '127.0.0.1', servername: 'pillion-control.pillion-system.svc', port, path: urlPath, ca, agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  const portByName: Record<string, number> = { control, webhook };
  for (const [kind, pr] of [['readiness', c.readinessProbe], ['liveness', c.livenessProbe]] as const) {
    t.equal(pr.httpGet.scheme, 'HTTPS');
    t.equal(await get(portByName[pr.httpGet.port]!, pr.httpGet.path), 200, `${kind} probe ${pr.httpGet.path} on ${pr.httpGet.port} answers 200`);
  }
  t.match(env.PILLION_INJECT_CONTROL_URL, /^https:\/\/pillion-control\.pillion-system\.svc:15010$/);
  t.equal(await stop(p), 0, 'SIGTERM: clean exit');
});
