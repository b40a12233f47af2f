// The control commands as a user runs them: `pillion control` plus apply, get, delete, status,
// history and rollback against it; readable output, JSON for scripts, one-line errors.
import t from 'tap';
import { spawn, execFile, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const BIN = path.join(__dirname, '..', 'bin', 'pillion.js');

function pillion(args: string[], env: Record<string, string> = {}, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [BIN, ...args], { env: { ...process.env, PILLION_TOKEN: '', ...env }, timeout: 20_000, cwd: os.tmpdir() },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

const FILE = `
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: backend }
spec:
  service: backend
  endpoints: [127.0.0.1:9080]
  timeout: 2s
  retries: { attempts: 2 }
  circuitBreaker: { volumeThreshold: 5 }
  rateLimit: { requestsPerSecond: 10 }
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: frontend }
spec: { service: frontend }
`;

t.test('apply/get/delete/history/rollback/status through the CLI', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-cli-'));
  const dataDir = path.join(dir, 'data');
  const child: ChildProcess = spawn(process.execPath, [BIN, 'control', '--port', '0', '--host', '127.0.0.1', '--data', dataDir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.teardown(() => { child.kill('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }); });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${log}`)), 10_000);
    child.stderr!.on('data', (d) => {
      log += d;
      const m = /"url":"([^"]+)"/.exec(log);
      if (m) { clearTimeout(timer); resolve(m[1]!); }
    });
  });
  const tokenFile = path.join(dataDir, 'admin.token');
  const token = fs.readFileSync(tokenFile, 'utf8').trim();
  const c = ['--control', url, '--token-file', tokenFile];
  const file = path.join(dir, 'policy.yaml');
  fs.writeFileSync(file, FILE);

  let r = await pillion(['apply', '-f', file, ...c]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'trafficpolicy/backend created\ntrafficpolicy/frontend created\nversion 1\n');
  r = await pillion(['apply', '-f', '-', '--control', url], { PILLION_TOKEN: token }, FILE);
  t.equal(r.stdout, 'trafficpolicy/backend unchanged\ntrafficpolicy/frontend unchanged\nversion 1 (nothing changed)\n', 'stdin and PILLION_TOKEN');

  r = await pillion(['get', ...c]);
  t.match(r.stdout, /^NAME\s+SERVICE\s+ENDPOINTS\s+TIMEOUT\s+RETRIES\s+BREAKER\s+RATE LIMIT\n/);
  t.match(r.stdout, /backend\s+backend\s+127\.0\.0\.1:9080\s+2s\s+2\s+50% of 5\s+10\/s burst 10\n/);
  r = await pillion(['get', 'backend', '-o', 'json', ...c]);
  t.equal(JSON.parse(r.stdout).spec.timeout, '2s');
  r = await pillion(['get', 'backend', '-o', 'yaml', ...c]);
  t.match(r.stdout, /kind: TrafficPolicy\nmetadata:\n  name: backend\n/);

  r = await pillion(['delete', 'frontend', ...c]);
  t.equal(r.stdout, 'trafficpolicy/frontend deleted\nversion 2\n');
  r = await pillion(['rollback', ...c]);
  t.equal(r.stdout, 'rolled back to version 1\nversion 3\n');
  r = await pillion(['history', ...c]);
  t.match(r.stdout, /^VERSION\s+CREATED\s+POLICIES\s+CHANGE\n3\*\s+\S+ \S+\s+2\s+rolled back to 1\n2\s+.*deleted frontend\n1\s+.*created backend, frontend\n$/);
  r = await pillion(['history', '--json', ...c]);
  t.same(JSON.parse(r.stdout).versions.map((v: any) => v.version), [3, 2, 1]);
  r = await pillion(['status', ...c]);
  t.equal(r.stdout, 'control version 3, 0 proxies connected\n');
  r = await pillion(['status', '--json', ...c]);
  t.same(JSON.parse(r.stdout).proxies, []);

  // Errors: one line on stderr, non-zero exit, nothing changed.
  fs.writeFileSync(path.join(dir, 'bad.yaml'), FILE.replace('timeout: 2s', 'timeout: soon'));
  r = await pillion(['apply', '-f', path.join(dir, 'bad.yaml'), ...c]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `pillion apply: ${path.join(dir, 'bad.yaml')} is invalid: backend: spec.timeout: must be a duration such as 500ms, 3s or 1m (got "soon")\n`);
  fs.writeFileSync(path.join(dir, 'conflict.yaml'), FILE.replace('name: frontend', 'name: other').replace('service: frontend', 'service: backend'));
  r = await pillion(['apply', '-f', path.join(dir, 'conflict.yaml'), ...c]);
  t.equal(r.code, 1);
  t.match(r.stderr, /^pillion apply: .*already governed by policy "backend"\n$/, 'a file that only conflicts as a whole is refused locally too');
  r = await pillion(['apply', '-f', path.join(dir, 'missing.yaml'), ...c]);
  t.same([r.code, r.stderr], [1, `pillion apply: cannot read ${path.join(dir, 'missing.yaml')}: ENOENT\n`]);
  r = await pillion(['status', '--control', url], { PILLION_TOKEN: 'wrong-token-wrong-token' });
  t.same([r.code, r.stderr], [1, 'pillion status: unauthorized (401): the admin token from PILLION_TOKEN was refused\n']);
  t.notMatch(r.stderr, token);
  r = await pillion(['apply', '-f', file, '--control', url]);
  t.same([r.code, r.stderr], [1, 'pillion apply: unauthorized (401): no admin token given; set PILLION_TOKEN or --token-file\n']);
  r = await pillion(['get', 'nope', ...c]);
  t.same([r.code, r.stderr], [1, 'pillion get: trafficpolicy "nope" not found\n']);
  r = await pillion(['rollback', '--to', '99', ...c]);
  t.same([r.code, r.stderr], [1, 'pillion rollback: version 99 does not exist (current is 3)\n']);
  r = await pillion(['history', ...c]);
  t.match(r.stdout, /^VERSION.*\n3\*/, 'no refused command created a version');

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM stops the control server cleanly');
  r = await pillion(['status', ...c]);
  t.equal(r.code, 1);
  t.equal(r.stderr, `pillion status: cannot reach the control server at ${url} (ECONNREFUSED)\n`);
  t.notMatch(log, token, 'the token never appears in the control server log');
});

t.test('bad flags exit 2 with one line', async (t) => {
  let r = await pillion(['apply']);
  t.same([r.code, r.stderr], [2, 'pillion apply: -f FILE is required (use -f - for stdin)\n']);
  r = await pillion(['rollback', '--to', 'x']);
  t.same([r.code, r.stderr], [2, 'pillion rollback: --to must be a version number (got "x")\n']);
  r = await pillion(['get', '-o', 'xml']);
  t.equal(r.code, 2);
  r = await pillion(['control', '--tls-cert', 'x']);
  t.same([r.code, r.stderr], [2, 'pillion control: --tls-cert and --tls-key go together\n']);
});

t.test('pillion control with TLS: https admin API (client given --ca-file) and the injection webhook beside it', async (t) => {
  try {
    require('node:child_process').execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    t.skip('openssl CLI not installed (CI has it)');
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-cli-tls-'));
  const cert = path.join(dir, 'cert.pem'), key = path.join(dir, 'key.pem');
  require('node:child_process').execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const child = spawn(process.execPath, [BIN, 'control', '--port', '0', '--host', '127.0.0.1', '--data', path.join(dir, 'data'),
    '--tls-cert', cert, '--tls-key', key, '--webhook-port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  t.teardown(() => { child.kill('SIGKILL'); fs.rmSync(dir, { recursive: true, force: true }); });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line: ${log}`)), 10_000);
    child.stderr!.on('data', (d) => {
      log += d;
      const m = /"url":"([^"]+)"/.exec(log);
      if (m && /webhook/.test(log)) { clearTimeout(timer); resolve(m[1]!); }
    });
  });
  t.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
  t.match(log, /"msg":"injection webhook (listening|not available)/, 'the webhook is started (or its absence logged) when TLS is given');
  const tokenFile = path.join(dir, 'data', 'admin.token');
  let r = await pillion(['status', '--control', url, '--token-file', tokenFile, '--ca-file', cert]);
  t.same([r.code, r.stdout], [0, 'control version 0, 0 proxies connected\n'], r.stderr);
  r = await pillion(['status', '--control', url, '--token-file', tokenFile]);
  t.equal(r.code, 1);
  t.match(r.stderr, /^pillion status: cannot reach the control server at https:\/\/127\.0\.0\.1:\d+ \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)\n$/, 'without the CA the certificate is refused');
});
