// Golden tests of `pillion inject`'s rule: every fixtures/inject/NAME.in.yaml, injected with the
// default options, must print exactly NAME.out.yaml. UPDATE_GOLDEN=1 rewrites the .out files
// (then read the diff). Beside the text, each case asserts what matters semantically.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { injectManifestText, injectOptions } from '../deploy/inject';

const dir = path.join(__dirname, 'fixtures', 'inject');
const update = process.env.UPDATE_GOLDEN === '1';
const opts = injectOptions();

type Obj = Record<string, any>;
const docsOf = (text: string): Obj[] => parseAllDocuments(text).map((d) => d.toJS()).filter((d) => d !== null);

function templateOf(obj: Obj): Obj | undefined {
  switch (obj.kind) {
    case 'Pod': return obj;
    case 'Deployment': case 'StatefulSet': case 'DaemonSet': case 'ReplicaSet': case 'Job': return obj.spec.template;
    case 'CronJob': return obj.spec.jobTemplate.spec.template;
    default: return undefined;
  }
}

function workloads(objs: Obj[]): Obj[] {
  return objs.flatMap((o) => (o.kind === 'List' ? o.items : [o])).filter((o) => templateOf(o));
}

const cases = fs.readdirSync(dir).filter((f) => f.endsWith('.in.yaml')).map((f) => f.slice(0, -'.in.yaml'.length)).sort();
const unchangedCases = new Set(['opt-out-annotation', 'opt-out-label', 'host-network', 'already-injected']);

t.ok(cases.length >= 12, `found the fixtures (${cases.join(', ')})`);

for (const name of cases) {
  t.test(name, async (t) => {
    const input = fs.readFileSync(path.join(dir, `${name}.in.yaml`), 'utf8');
    const outFile = path.join(dir, `${name}.out.yaml`);
    const { text, workloads: results } = injectManifestText(input, opts, `${name}.in.yaml`);
    if (update) fs.writeFileSync(outFile, text);
    t.equal(text, fs.readFileSync(outFile, 'utf8'), `${name}.out.yaml matches (UPDATE_GOLDEN=1 to rewrite)`);

    const before = workloads(docsOf(input));
    const after = workloads(docsOf(text));
    t.equal(after.length, before.length, 'same workloads, same order');
    before.forEach((b, i) => {
      const tb = templateOf(b)!;
      const ta = templateOf(after[i]!)!;
      // App containers are never modified: each one is still there, byte for byte.
      for (const c of tb.spec.containers) t.same(ta.spec.containers.find((x: Obj) => x.name === c.name), c, `container ${c.name} untouched`);
      for (const c of tb.spec.initContainers ?? []) t.same(ta.spec.initContainers.find((x: Obj) => x.name === c.name), c, `init container ${c.name} untouched`);
      if (unchangedCases.has(name)) {
        t.same(after[i], b, 'left unchanged');
        t.equal(results[i]!.decision.injected, false, 'reported as not injected');
        return;
      }
      t.equal(results[i]!.decision.injected, true, 'reported as injected');
      const all = [...(ta.spec.initContainers ?? []), ...ta.spec.containers];
      const proxy = all.find((c: Obj) => c.name === 'pillion-proxy');
      const init = all.find((c: Obj) => c.name === 'pillion-init');
      t.ok(proxy && init, 'proxy and init container added');
      t.same(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] }, 'init: only NET_ADMIN and NET_RAW');
      t.equal(init.securityContext.privileged, false);
      t.equal(proxy.securityContext.runAsUser, 1337);
      t.equal(proxy.securityContext.readOnlyRootFilesystem, true);
      t.equal(proxy.securityContext.allowPrivilegeEscalation, false);
      t.equal(ta.metadata.annotations['pillion.dev/status'], 'injected');
      const native = tb.metadata?.annotations?.['pillion.dev/native-sidecar'] !== 'false';
      if (native) {
        t.equal(proxy.restartPolicy, 'Always', 'native sidecar');
        t.same(ta.spec.initContainers.slice(0, 2).map((c: Obj) => c.name), ['pillion-init', 'pillion-proxy'], 'iptables, then the proxy, before the app\'s init containers');
        t.ok(proxy.startupProbe, 'startup probe holds the app until /ready');
        t.notOk(ta.spec.containers.some((c: Obj) => c.name === 'pillion-proxy'), 'not a regular container');
      } else {
        t.equal(proxy.restartPolicy, undefined, 'classic container');
        t.equal(ta.spec.containers[0].name, 'pillion-proxy', 'proxy first');
        t.ok(proxy.lifecycle?.postStart, 'postStart hook holds the app until /ready');
        t.equal(ta.spec.initContainers.at(-1).name, 'pillion-init', 'iptables after the app\'s init containers');
      }
    });
  });
}

t.test('the service name comes from app.kubernetes.io/name, then app, then the workload name', async (t) => {
  const service = (name: string) => {
    const text = fs.readFileSync(path.join(dir, `${name}.out.yaml`), 'utf8');
    const tmpl = templateOf(workloads(docsOf(text))[0]!)!;
    const proxy = [...(tmpl.spec.initContainers ?? []), ...tmpl.spec.containers].find((c: Obj) => c.name === 'pillion-proxy');
    return proxy.args[proxy.args.indexOf('--service') + 1];
  };
  t.equal(service('pod'), 'ratings');
  t.equal(service('deployment'), 'reviews');
  t.equal(service('daemonset'), 'node-agent');
  t.equal(service('classic-sidecar'), 'legacy-api', 'the pillion.dev/service annotation wins');
});

t.test('skip-port annotations reach the init container', async (t) => {
  const text = fs.readFileSync(path.join(dir, 'cronjob.out.yaml'), 'utf8');
  const init = templateOf(docsOf(text)[0]!)!.spec.initContainers[0];
  t.same(init.args.slice(init.args.indexOf('--skip-inbound-ports')), ['--skip-inbound-ports', '9000:9100', '--skip-outbound-ports', '5432,6379']);
});

t.test('kinds without pods keep their text, comments included', async (t) => {
  const text = fs.readFileSync(path.join(dir, 'other-kinds.out.yaml'), 'utf8');
  t.match(text, /name: reviews # the Service keeps its comment/);
  t.same(docsOf(text).slice(0, 3), docsOf(fs.readFileSync(path.join(dir, 'other-kinds.in.yaml'), 'utf8')).slice(0, 3));
});
