// Every manifest under deploy/ and every output of `pillion inject` must be a valid Kubernetes
// object, checked two ways against the API schemas that kubernetes-models ships (Kubernetes
// 1.32-era, so the native-sidecar restartPolicy is in them): its validators (types, required fields,
// enums, formats), and its TypeScript types with excess-property checks, which catch misspelt
// or misplaced fields that the OpenAPI schemas let through. Then the kustomization's wiring:
// names, ports, Secrets and the caBundle replacement all refer to things that exist.
import t from 'tap';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { decodePolicyObjects } from '../proxy/config';
import { injectManifestText, injectOptions } from '../deploy/inject';

type Obj = Record<string, any>;
const root = path.join(__dirname, '..');
const kdir = path.join(root, 'deploy', 'kubernetes');
const update = process.env.UPDATE_GOLDEN === '1';

function yamlFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return ['tokens', 'tls', 'node_modules'].includes(e.name) ? [] : yamlFiles(p);
    return /\.ya?ml$/.test(e.name) ? [p] : [];
  }).sort();
}

function docsOf(text: string, where: string): Obj[] {
  return parseAllDocuments(text).map((d, i) => {
    if (d.errors.length) throw new Error(`${where} document ${i + 1}: ${d.errors[0]!.message}`);
    return d.toJS() as Obj;
  }).filter((d) => d !== null && d !== undefined);
}
const rel = (p: string) => path.relative(root, p);

function modelPath(obj: Obj): string {
  const [group, version] = String(obj.apiVersion).includes('/') ? String(obj.apiVersion).split('/') : ['', String(obj.apiVersion)];
  return group ? `kubernetes-models/${group}/${version}/${obj.kind}` : `kubernetes-models/${version}/${obj.kind}`;
}

/** The kubernetes-models validator of the object's kind; returns the problems, empty when valid. */
function schemaProblems(obj: Obj): string[] {
  let Model: any;
  try {
    Model = require(modelPath(obj))[obj.kind];
  } catch {
    return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    return [(err as Error).message.split('\n')[0]!];
  }
}

/** One TypeScript program over all objects: excess-property errors name unknown fields. */
function unknownFieldProblems(items: { where: string; obj: Obj }[]): string[] {
  const file = path.join(root, 'test', '__k8s_manifest_types__.ts');
  const lines: string[] = [];
  const lineOwner: string[] = [];
  items.forEach(({ where, obj }, i) => {
    const text = `export const d${i}: import(${JSON.stringify(modelPath(obj))}).I${obj.kind} = ${JSON.stringify(obj, null, 1)};`;
    for (const _ of text.split('\n')) lineOwner.push(where);
    lines.push(text);
  });
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, skipLibCheck: true, types: [], module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10, target: ts.ScriptTarget.ES2022,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (f === file ? ts.createSourceFile(f, source, lang) : getSourceFile(f, lang, ...rest));
  host.fileExists = (f) => f === file || fileExists(f);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    return `${lineOwner[line] ?? '?'}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

// Gather every object: the manifests and examples as written, and inject outputs.
const kubeObjects: { where: string; obj: Obj }[] = [];
const policies: { where: string; obj: Obj }[] = [];
for (const file of yamlFiles(path.join(root, 'deploy'))) {
  docsOf(fs.readFileSync(file, 'utf8'), rel(file)).forEach((obj, i) => {
    const where = `${rel(file)}#${i + 1} ${obj.kind}/${obj.metadata?.name ?? ''}`;
    if (String(obj.apiVersion).startsWith('kustomize.config.k8s.io/')) return;
    if (String(obj.apiVersion).startsWith('pillion.dev/')) policies.push({ where, obj });
    else kubeObjects.push({ where, obj });
  });
}
const injected: { where: string; obj: Obj }[] = [];
const fixtures = path.join(root, 'test', 'fixtures', 'inject');
for (const f of fs.readdirSync(fixtures).filter((f) => f.endsWith('.out.yaml')).sort()) {
  docsOf(fs.readFileSync(path.join(fixtures, f), 'utf8'), f).forEach((obj, i) => {
    const items = obj.kind === 'List' ? obj.items : [obj];
    items.forEach((o: Obj, j: number) => {
      if (!String(o.apiVersion).startsWith('pillion.dev/')) injected.push({ where: `fixtures/inject/${f}#${i + 1}.${j} ${o.kind}`, obj: o });
    });
  });
}
// The examples' workloads as `pillion inject` prints them (native and classic).
for (const file of yamlFiles(path.join(kdir, 'examples')).filter((f) => !f.endsWith('.injected.yaml'))) {
  const text = fs.readFileSync(file, 'utf8');
  if (!/kind: (Deployment|Pod|StatefulSet|DaemonSet|Job|CronJob)\b/.test(text)) continue;
  for (const [mode, prefix] of [['native', ''], ['classic', 'pillion.dev/native-sidecar: "false"']] as const) {
    const source = mode === 'native' ? text : text.replace(/^(\s*)labels:\n(\s*)app\.kubernetes\.io\/name: (\S+)$/gm, (m, i1, i2) => `${i1}annotations:\n${i2}${prefix}\n${m}`);
    docsOf(injectManifestText(source, injectOptions()).text, rel(file)).forEach((obj, i) =>
      injected.push({ where: `inject(${rel(file)}) ${mode} #${i + 1} ${obj.kind}`, obj }));
  }
}

t.test('every Kubernetes object under deploy/ validates against the API schemas', async (t) => {
  t.ok(kubeObjects.length >= 14, `found ${kubeObjects.length} objects`);
  for (const { where, obj } of kubeObjects) t.same(schemaProblems(obj), [], where);
});

t.test('every output of pillion inject validates against the API schemas', async (t) => {
  t.ok(injected.length >= 20, `found ${injected.length} objects`);
  for (const { where, obj } of injected) t.same(schemaProblems(obj), [], where);
  t.ok(injected.some(({ obj }) => JSON.stringify(obj).includes('"restartPolicy":"Always"')), 'native sidecars among them');
});

t.test('no unknown or misplaced fields anywhere (TypeScript excess-property check)', async (t) => {
  t.same(unknownFieldProblems([...kubeObjects, ...injected]), []);
  // The check itself must be able to fail.
  const bad = unknownFieldProblems([{ where: 'probe', obj: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' }, spec: { containers: [{ name: 'a', imagee: 'b' }] } } }]);
  t.match(bad.join('\n'), /probe: .*'"?imagee"?' does not exist/);
});

t.test('the examples run programs that the image holds', async (t) => {
  const dist = path.join(root, 'dist');
  if (!fs.existsSync(path.join(dist, 'cli', 'main.js'))) return t.skip('dist/ is not built (npm test builds it first)');
  const paths = kubeObjects.flatMap(({ obj }) => JSON.stringify(obj).match(/\/app\/dist\/[\w/.-]+\.js/g) ?? []);
  t.ok(paths.length >= 2, `found ${paths.join(', ')}`);
  // deploy/Dockerfile copies dist/ to /app/dist.
  for (const p of new Set(paths)) t.ok(fs.existsSync(path.join(root, p.slice('/app/'.length))), `${p} exists in the image`);
});

t.test('TrafficPolicy examples decode', async (t) => {
  t.ok(policies.length >= 2);
  t.doesNotThrow(() => decodePolicyObjects(policies.map((p) => p.obj)));
});

t.test('shared-volume-pod.injected.yaml is what pillion inject prints today', async (t) => {
  const src = path.join(kdir, 'examples', 'shared-volume-pod.yaml');
  const out = path.join(kdir, 'examples', 'shared-volume-pod.injected.yaml');
  const text = injectManifestText(fs.readFileSync(src, 'utf8'), injectOptions(), 'shared-volume-pod.yaml').text;
  if (update) fs.writeFileSync(out, text);
  t.equal(fs.readFileSync(out, 'utf8'), text, 'in sync (UPDATE_GOLDEN=1 to rewrite)');
  const pod = docsOf(text, 'injected').find((d) => d.kind === 'Pod')!;
  t.same(pod.spec.containers.map((c: Obj) => c.name), ['nginx', 'writer'], 'nginx and busybox untouched, in order');
  t.same(pod.spec.initContainers.map((c: Obj) => c.name), ['pillion-init', 'pillion-proxy']);
});

const byKind = (kind: string) => kubeObjects.filter(({ where, obj }) => obj.kind === kind && !where.includes('/examples/')).map(({ obj }) => obj);

t.test('the kustomization lists every manifest, and its references resolve', async (t) => {
  const k = docsOf(fs.readFileSync(path.join(kdir, 'kustomization.yaml'), 'utf8'), 'kustomization.yaml')[0]!;
  const onDisk = fs.readdirSync(kdir).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml').sort();
  t.same([...k.resources].sort(), onDisk, 'resources = the yaml files beside it');
  t.equal(k.namespace, 'pillion-system');

  const [ns] = byKind('Namespace');
  t.equal(ns.metadata.name, 'pillion-system');
  const [deploy] = byKind('Deployment');
  const [svc] = byKind('Service');
  const [sa] = byKind('ServiceAccount');
  const [pvc] = byKind('PersistentVolumeClaim');
  const [hook] = byKind('MutatingWebhookConfiguration');
  t.same(byKind('Role').concat(byKind('ClusterRole'), byKind('RoleBinding'), byKind('ClusterRoleBinding')), [], 'no RBAC: the control server never calls the API server');
  t.equal(sa.automountServiceAccountToken, false);
  const pod = deploy.spec.template;
  t.equal(pod.spec.serviceAccountName, sa.metadata.name);
  t.equal(pod.spec.automountServiceAccountToken, false);
  t.same(deploy.spec.selector.matchLabels, svc.spec.selector, 'the Service selects the Deployment\'s pods');
  for (const [key, value] of Object.entries(svc.spec.selector)) t.equal(pod.metadata.labels[key], value);
  t.equal(pod.metadata.annotations['pillion.dev/inject'], 'false', 'the control server is never injected');

  const c = pod.spec.containers[0];
  t.equal(c.securityContext.readOnlyRootFilesystem, true);
  t.equal(pod.spec.securityContext.runAsUser, 1337);
  const portNames = c.ports.map((p: Obj) => p.name);
  t.same(svc.spec.ports.map((p: Obj) => [p.port, p.targetPort]), [[15010, 'control'], [15017, 'webhook']]);
  for (const p of svc.spec.ports) t.ok(portNames.includes(p.targetPort), `targetPort ${p.targetPort} is a container port`);

  // Every file the control server is told to read is on a mounted volume, from a generated Secret.
  const generated = new Map<string, string[]>(k.secretGenerator.map((g: Obj) => [g.name, g.files.map((f: string) => path.basename(f))]));
  const volumes = new Map<string, Obj>(pod.spec.volumes.map((v: Obj) => [v.name, v]));
  t.equal(volumes.get('data')?.persistentVolumeClaim.claimName, pvc.metadata.name);
  for (const flag of ['--admin-token-file', '--proxy-token-file', '--tls-cert', '--tls-key']) {
    const file = c.args[c.args.indexOf(flag) + 1];
    const mount = c.volumeMounts.find((m: Obj) => file.startsWith(`${m.mountPath}/`));
    t.ok(mount, `${flag} ${file} is under a mount`);
    const secret = volumes.get(mount.name)?.secret?.secretName;
    t.ok(generated.get(secret)?.includes(path.basename(file)), `${flag}: ${secret} has ${path.basename(file)}`);
  }
  for (const g of k.secretGenerator) {
    for (const f of g.files) t.match(f, /^(tokens|tls)\//, `${f} is in a git-ignored folder`);
  }
  t.match(fs.readFileSync(path.join(kdir, '.gitignore'), 'utf8'), /^tokens\/$[\s\S]*^tls\/$/m);
  const tracked = spawnSync('git', ['ls-files', 'deploy/kubernetes/tokens', 'deploy/kubernetes/tls'], { cwd: root, encoding: 'utf8' });
  if (tracked.status === 0) t.equal(tracked.stdout, '', 'no token or key is committed');

  // The webhook: where the API server sends reviews, and which pods it may touch.
  const w = hook.webhooks[0];
  t.same(w.admissionReviewVersions, ['v1']);
  t.equal(w.sideEffects, 'None');
  t.ok(['Ignore', 'Fail'].includes(w.failurePolicy));
  t.same(w.clientConfig.service, { name: svc.metadata.name, namespace: 'pillion-system', port: 15017, path: '/inject' });
  t.same(w.rules, [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
  const nsSel = w.namespaceSelector.matchExpressions;
  t.ok(nsSel.some((e: Obj) => e.key === 'pillion.dev/inject' && e.operator === 'In' && e.values.includes('enabled')));
  t.ok(nsSel.some((e: Obj) => e.key === 'kubernetes.io/metadata.name' && e.operator === 'NotIn' && e.values.includes('pillion-system')));
  t.ok(w.objectSelector.matchExpressions.some((e: Obj) => e.key === 'pillion.dev/inject' && e.operator === 'NotIn' && e.values.includes('false')));

  // caBundle comes from the TLS Secret's ca.crt.
  const [rep] = k.replacements;
  t.equal(rep.source.kind, 'Secret');
  t.ok(generated.get(rep.source.name)?.includes('ca.crt'));
  t.equal(rep.source.fieldPath, 'data.ca\\.crt');
  t.equal(rep.targets[0].select.name, hook.metadata.name);
  t.same(rep.targets[0].fieldPaths, [`webhooks.[name=${w.name}].clientConfig.caBundle`]);

  const ek = docsOf(fs.readFileSync(path.join(kdir, 'examples', 'demo', 'kustomization.yaml'), 'utf8'), 'demo kustomization')[0]!;
  for (const r of ek.resources) t.ok(fs.existsSync(path.join(kdir, 'examples', 'demo', r)), `demo resource ${r} exists`);
  const demoNs = kubeObjects.find(({ obj }) => obj.kind === 'Namespace' && obj.metadata.name === 'demo')!.obj;
  t.equal(demoNs.metadata.labels['pillion.dev/inject'], 'enabled', 'the demo namespace is labelled for injection');
});

t.test('the generated Secrets: generate-secrets.sh output is valid and never overwritten', async (t) => {
  if (spawnSync('openssl', ['version']).status !== 0) return t.skip('openssl is not installed (CI installs it)');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-secrets-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const run = () => spawnSync('sh', [path.join(kdir, 'generate-secrets.sh'), tmp], { encoding: 'utf8', timeout: 60_000 });
  const first = run();
  t.equal(first.status, 0, first.stderr);
  const token = fs.readFileSync(path.join(tmp, 'tokens', 'admin.token'), 'utf8').trim();
  t.match(token, /^[0-9a-f]{64}$/);
  t.equal(fs.statSync(path.join(tmp, 'tls', 'tls.key')).mode & 0o077, 0, 'keys readable by the owner only');
  const ca = new X509Certificate(fs.readFileSync(path.join(tmp, 'tls', 'ca.crt')));
  const cert = new X509Certificate(fs.readFileSync(path.join(tmp, 'tls', 'tls.crt')));
  t.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'signed by the CA');
  t.ok(ca.ca, 'the CA is a CA');
  for (const name of ['pillion-control.pillion-system.svc', 'localhost']) t.ok(cert.checkHost(name), `valid for ${name}`);
  t.ok(cert.checkIP('127.0.0.1'), 'valid for 127.0.0.1 (port-forward)');
  const second = run();
  t.equal(second.status, 0);
  t.equal(fs.readFileSync(path.join(tmp, 'tokens', 'admin.token'), 'utf8').trim(), token, 'a rerun keeps existing tokens');

  // The Secrets kustomize would generate from these files are valid objects.
  const k = docsOf(fs.readFileSync(path.join(kdir, 'kustomization.yaml'), 'utf8'), 'kustomization.yaml')[0]!;
  for (const g of k.secretGenerator) {
    const data = Object.fromEntries(g.files.map((f: string) => [path.basename(f), fs.readFileSync(path.join(tmp, f)).toString('base64')]));
    const secret = { apiVersion: 'v1', kind: 'Secret', type: g.type, metadata: { name: g.name, namespace: 'pillion-system' }, data };
    t.same(schemaProblems(secret), [], `Secret ${g.name}`);
    if (g.type === 'kubernetes.io/tls') t.ok(data['tls.crt'] && data['tls.key'], 'a TLS Secret has tls.crt and tls.key');
  }
});
