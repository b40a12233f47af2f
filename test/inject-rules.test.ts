// The injection rule as a function: inputs are never mutated, a second pass is a no-op, the
// webhook's JSON Patch turns the pod into exactly what the rule returns, bad annotations are
// typed errors, and the injected containers carry what the cluster needs.
import t from 'tap';
import {
  diffJsonPatch, InjectError, injectOptions, injectPodTemplate, JsonPatchOp, PodTemplate,
} from '../deploy/inject';

type Obj = Record<string, any>;

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.values(o).forEach(deepFreeze);
    Object.freeze(o);
  }
  return o;
}

/** A minimal RFC 6902 applier (add/replace/remove), written here so the test checks the patch independently. */
function applyPatch(doc: unknown, ops: readonly JsonPatchOp[]): unknown {
  const root = structuredClone(doc) as Obj;
  for (const op of ops) {
    const segs = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const key = segs.pop()!;
    let parent: any = root;
    for (const s of segs) {
      if (parent === undefined) throw new Error(`path ${op.path} does not exist`);
      parent = parent[Array.isArray(parent) ? Number(s) : s];
    }
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (i > parent.length) throw new Error(`index out of range in ${op.path}`);
      if (op.op === 'add') parent.splice(i, 0, op.value);
      else if (op.op === 'replace') parent[i] = op.value;
      else parent.splice(i, 1);
    } else if (parent && typeof parent === 'object') {
      if (op.op === 'remove') delete parent[key];
      else {
        if (op.op === 'replace' && !(key in parent)) throw new Error(`replace of missing ${op.path}`);
        parent[key] = op.value;
      }
    } else throw new Error(`parent of ${op.path} is not a container`);
  }
  return root;
}

const opts = injectOptions();
const pod = (over: Obj = {}): PodTemplate => deepFreeze({
  metadata: { name: 'web-1', labels: { app: 'web' }, annotations: { 'team/owner': 'a~b' }, ...(over.metadata ?? {}) },
  spec: { containers: [{ name: 'web', image: 'nginx' }], volumes: [{ name: 'v', emptyDir: {} }], ...(over.spec ?? {}) },
}) as PodTemplate;

t.test('does not mutate its input and a second pass changes nothing', async (t) => {
  const input = pod();
  const first = injectPodTemplate(input, opts);
  t.equal(first.injected, true);
  const second = injectPodTemplate(first.template, opts);
  t.equal(second.injected, false);
  t.match((second as { reason: string }).reason, /already has the Pillion sidecar/);
  // A pod whose proxy container was put there by hand (no annotation) is recognised too.
  const byName = injectPodTemplate(pod({ spec: { initContainers: [{ name: 'pillion-proxy', image: 'x' }] } }), opts);
  t.equal(byName.injected, false);
});

t.test('the JSON Patch turns the pod into the injected pod, and only adds', async (t) => {
  for (const variant of [pod(), pod({ metadata: { annotations: undefined } }), pod({ spec: { initContainers: [{ name: 'm', image: 'x' }] } }),
    pod({ metadata: { annotations: { 'pillion.dev/native-sidecar': 'false' } }, spec: { initContainers: [{ name: 'm', image: 'x' }], containers: [{ name: 'a', image: 'a' }, { name: 'b', image: 'b' }] } })]) {
    const full = { apiVersion: 'v1', kind: 'Pod', ...variant };
    const d = injectPodTemplate(variant, opts);
    t.equal(d.injected, true);
    const injected = { ...full, metadata: d.template.metadata, spec: d.template.spec };
    const patch = diffJsonPatch(full, injected);
    t.same(applyPatch(full, patch), injected, 'patched pod equals injected pod');
    t.ok(patch.every((op) => op.op === 'add'), `only adds (${patch.map((p) => `${p.op} ${p.path}`).join(', ')})`);
    t.notOk(patch.some((op) => /^\/spec\/containers\/\d+\//.test(op.path)), 'no op reaches inside an app container');
  }
});

t.test('diffJsonPatch escapes keys and falls back to replace for reordered arrays', async (t) => {
  t.same(diffJsonPatch({ a: {} }, { a: { 'x/y~z': 1 } }), [{ op: 'add', path: '/a/x~1y~0z', value: 1 }]);
  t.same(diffJsonPatch({ a: [1, 2] }, { a: [2, 1] }), [{ op: 'replace', path: '/a', value: [2, 1] }]);
  t.same(diffJsonPatch({ a: [1, 2], b: 1 }, { a: [0, 1, 5, 2, 3] }), [
    { op: 'remove', path: '/b' },
    { op: 'add', path: '/a/0', value: 0 }, { op: 'add', path: '/a/2', value: 5 }, { op: 'add', path: '/a/4', value: 3 },
  ]);
});

t.test('opt-outs', async (t) => {
  const skip = (p: PodTemplate) => { const d = injectPodTemplate(p, opts); return d.injected ? 'injected' : (d as { reason: string }).reason; };
  t.match(skip(pod({ metadata: { annotations: { 'pillion.dev/inject': 'false' } } })), /pillion.dev\/inject is "false"/);
  t.match(skip(pod({ metadata: { annotations: { 'pillion.dev/inject': 'False ' } } })), /"false"/, 'case and spaces forgiven');
  t.match(skip(pod({ metadata: { labels: { app: 'web', 'pillion.dev/inject': 'false' } } })), /"false"/, 'label works too');
  t.match(skip(pod({ spec: { hostNetwork: true } })), /host network/);
  t.equal(skip(pod({ metadata: { annotations: { 'pillion.dev/inject': 'true' } } })), 'injected');
});

t.test('bad input is a typed error naming the problem', async (t) => {
  const code = (p: PodTemplate) => {
    try { injectPodTemplate(p, opts); return 'no error'; } catch (err) { return err instanceof InjectError ? `${err.code}: ${err.message}` : String(err); }
  };
  t.match(code(pod({ metadata: { annotations: { 'pillion.dev/native-sidecar': 'maybe' } } })), /^INJECT_BAD_ANNOTATION: pillion.dev\/native-sidecar must be "true" or "false"/);
  t.match(code(pod({ metadata: { annotations: { 'pillion.dev/skip-outbound-ports': '5432,http' } } })), /^INJECT_BAD_ANNOTATION: pillion.dev\/skip-outbound-ports/);
  t.match(code(pod({ metadata: { annotations: { 'pillion.dev/service': 'Not_A_Label' } } })), /^INJECT_BAD_ANNOTATION: pillion.dev\/service/);
  t.match(code(pod({ spec: { containers: [] } })), /^INJECT_BAD_OBJECT: the pod spec has no containers/);
  t.match(code(pod({ spec: { volumes: [{ name: 'pillion-cache', emptyDir: {} }] } })), /^INJECT_BAD_OBJECT: .*pillion-cache/);
  t.match(code({ metadata: {}, spec: { containers: [{ name: 'x' }] } }), /^INJECT_BAD_OBJECT: cannot tell the service name/);
});

t.test('the injected proxy: control URL, token, CA, cache dir, probes, resources', async (t) => {
  const d = injectPodTemplate(pod(), opts);
  if (!d.injected) throw new Error('not injected');
  const proxy = d.template.spec.initContainers!.find((c) => c.name === 'pillion-proxy') as Obj;
  const arg = (flag: string) => proxy.args[proxy.args.indexOf(flag) + 1];
  t.equal(proxy.args[0], 'proxy');
  t.equal(arg('--service'), 'web');
  t.equal(arg('--control'), 'https://pillion-control.pillion-system.svc:15010');
  t.equal(arg('--token-file'), '/var/run/secrets/pillion/token');
  t.equal(arg('--ca-file'), '/var/run/secrets/pillion/ca.crt');
  t.equal(arg('--cache-dir'), '/var/lib/pillion-proxy');
  t.equal(arg('--admin-port'), '15000');
  t.same(proxy.resources.limits, { cpu: '1', memory: '256Mi' });
  t.match(proxy.startupProbe.exec.command.join(' '), /127\.0\.0\.1.*15000.*\/ready/, 'probes /ready on loopback from inside the pod');
  const vols = d.template.spec.volumes!;
  t.same(vols.map((v) => v.name), ['v', 'pillion-token', 'pillion-cache']);
  t.same((vols[1] as Obj).secret.items.map((i: Obj) => i.key), ['token', 'ca.crt']);

  const plain = injectPodTemplate(pod(), injectOptions({ controlUrl: 'http://control.mesh:15010', image: 'reg/pillion:9', adminPort: 15100 }));
  if (!plain.injected) throw new Error('not injected');
  const p2 = plain.template.spec.initContainers!.find((c) => c.name === 'pillion-proxy') as Obj;
  t.notOk(p2.args.includes('--ca-file'), 'no CA for an http control URL');
  t.equal(p2.image, 'reg/pillion:9');
  t.match(p2.startupProbe.exec.command.join(' '), /port:15100/);
  t.same((plain.template.spec.volumes![1] as Obj).secret.items.map((i: Obj) => i.key), ['token']);
});

t.test('an app running as the proxy UID is injected with a warning', async (t) => {
  const d = injectPodTemplate(pod({ spec: { securityContext: { runAsUser: 1337 }, containers: [{ name: 'web', image: 'nginx' }, { name: 'own', image: 'x', securityContext: { runAsUser: 1000 } }] } }), opts);
  if (!d.injected) throw new Error('not injected');
  t.same(d.warnings, ['container "web" runs as UID 1337, the proxy\'s: its traffic bypasses the sidecar'], 'pod-level UID counts, container-level overrides it');
  const clean = injectPodTemplate(pod(), opts);
  t.same(clean.injected && clean.warnings, []);
});

t.test('the service name is the first candidate that is a DNS label', async (t) => {
  const svc = (labels: Record<string, string>, fallback?: string) => {
    const d = injectPodTemplate({ metadata: { labels }, spec: { containers: [{ name: 'c', image: 'i' }] } }, opts, fallback);
    if (!d.injected) throw new Error('not injected');
    const proxy = d.template.spec.initContainers!.find((c) => c.name === 'pillion-proxy') as Obj;
    return proxy.args[proxy.args.indexOf('--service') + 1];
  };
  t.equal(svc({ 'app.kubernetes.io/name': 'ratings', app: 'other' }), 'ratings');
  t.equal(svc({ 'app.kubernetes.io/name': 'My_Ratings', app: 'ratings' }), 'ratings', 'an invalid label value is passed over');
  t.equal(svc({ app: 'Web.App' }, 'web'), 'web', 'then the workload name');
  t.throws(() => svc({ app: 'Web.App' }, 'web.v2'), /cannot tell the service name \("Web.App", "web.v2" are not a DNS label\)/);
});
