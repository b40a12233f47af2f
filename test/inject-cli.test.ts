// `pillion inject` as a user runs it: the compiled CLI in a child process, YAML on stdout,
// one-line errors and a non-zero exit on stderr.
import t, { Test } from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const fixtures = path.join(__dirname, 'fixtures', 'inject');
const bin = path.join(root, 'bin', 'pillion.js');

function inject(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [bin, 'inject', ...args], { input, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const golden = (name: string) => fs.readFileSync(path.join(fixtures, `${name}.out.yaml`), 'utf8');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-inject-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('prints the injected manifest, the same as the golden file', async (t) => {
  const r = inject(['-f', path.join(fixtures, 'deployment.in.yaml')]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, golden('deployment'));
  t.equal(r.stderr, '');
});

t.test('reads stdin with -f -', async (t) => {
  const r = inject(['-f', '-'], fs.readFileSync(path.join(fixtures, 'job.in.yaml'), 'utf8'));
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, golden('job'));
});

t.test('says on stderr which workloads it left alone, and why', async (t) => {
  const r = inject(['-f', path.join(fixtures, 'host-network.in.yaml')]);
  t.equal(r.code, 0);
  t.equal(r.stdout, golden('host-network'));
  t.equal(r.stderr, 'pillion inject: DaemonSet/node-exporter left unchanged: the pod uses the host network\n');
});

t.test('warns on stderr about an app running as the proxy UID', async (t) => {
  const r = inject(['-f', '-'], 'apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: p}}\nspec:\n  securityContext: {runAsUser: 1337}\n  containers: [{name: app, image: app}]\n');
  t.equal(r.code, 0);
  t.match(r.stdout, /name: pillion-proxy/);
  t.equal(r.stderr, 'pillion inject: warning: Pod/p: container "app" runs as UID 1337, the proxy\'s: its traffic bypasses the sidecar\n');
});

t.test('--image and --control change what is injected', async (t) => {
  const r = inject(['-f', path.join(fixtures, 'pod.in.yaml'), '--image', 'registry.example/pillion:1.2', '--control', 'http://ctl.mesh:15010']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /image: registry\.example\/pillion:1\.2/);
  t.match(r.stdout, /- http:\/\/ctl\.mesh:15010/);
  t.notMatch(r.stdout, /--ca-file/, 'no CA file for plain http');
});

function oneLineError(t: Test, r: ReturnType<typeof inject>, code: number, pattern: RegExp) {
  t.equal(r.code, code, 'exit code');
  t.equal(r.stdout, '', 'nothing on stdout');
  t.equal(r.stderr.split('\n').filter(Boolean).length, 1, `one line: ${r.stderr}`);
  t.match(r.stderr, pattern);
}

t.test('errors: one line, non-zero exit', async (t) => {
  const bad = path.join(tmp, 'bad.yaml');
  fs.writeFileSync(bad, 'apiVersion: v1\nkind: Pod\nmetadata: {name: x\n');
  oneLineError(t, inject(['-f', bad]), 1, /^pillion inject: .*bad\.yaml: .*line \d+/);

  const annotated = path.join(tmp, 'annotated.yaml');
  fs.writeFileSync(annotated, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    metadata:\n      labels: {app: api}\n      annotations: {pillion.dev/native-sidecar: "sometimes"}\n    spec:\n      containers: [{name: api, image: api}]\n');
  oneLineError(t, inject(['-f', annotated]), 1, /^pillion inject: Deployment\/api: pillion.dev\/native-sidecar must be "true" or "false"/);

  const noTemplate = path.join(tmp, 'no-template.yaml');
  fs.writeFileSync(noTemplate, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: 1}\n');
  oneLineError(t, inject(['-f', noTemplate]), 1, /^pillion inject: Deployment\/api: no pod template at spec\.template/);

  oneLineError(t, inject(['-f', path.join(tmp, 'missing.yaml')]), 1, /^pillion inject: cannot read .*missing\.yaml: ENOENT/);
  oneLineError(t, inject([]), 2, /^pillion inject: -f FILE is required/);
  oneLineError(t, inject(['-f', bad, '--bogus']), 2, /^pillion inject: .*bogus/);
  oneLineError(t, inject(['-f', bad, '--control', 'ctl:15010']), 2, /--control must be an http\(s\) URL/);
});
