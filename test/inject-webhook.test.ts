// The injection webhook over real HTTPS, with a certificate made by deploy/kubernetes/generate-
// secrets.sh (openssl), fed AdmissionReview v1 requests as the API server sends them, malformed
// ones, and pods it must leave alone. The server must answer every one and stay up.
import t from 'tap';
import https from 'node:https';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startInjectionWebhook } from '../deploy/inject/webhook';
import type { Logger } from '../proxy/runtime/logger';

type Obj = Record<string, any>;

const hasOpenssl = spawnSync('openssl', ['version'], { encoding: 'utf8' }).status === 0;

if (!hasOpenssl) {
  t.test('webhook over HTTPS', { skip: 'openssl is not installed: it makes the test certificate (CI installs it)' }, async () => {});
} else {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-webhook-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const gen = spawnSync('sh', [path.join(__dirname, '..', 'deploy', 'kubernetes', 'generate-secrets.sh'), tmp], { encoding: 'utf8', timeout: 60_000 });
  if (gen.status !== 0) throw new Error(`generate-secrets.sh failed: ${gen.stderr}`);
  const ca = fs.readFileSync(path.join(tmp, 'tls', 'ca.crt'));
  const cert = fs.readFileSync(path.join(tmp, 'tls', 'tls.crt'));
  const key = fs.readFileSync(path.join(tmp, 'tls', 'tls.key'));

  const lines: string[] = [];
  const logger: Logger = { info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`), error: (m) => lines.push(`error ${m}`) };

  interface Reply { status: number; json: Obj | undefined; text: string }
  function request(port: number, method: string, urlPath: string, body?: string | Buffer, headers: Obj = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', servername: 'localhost', port, method, path: urlPath, ca, timeout: 10_000, agent: false,
        headers: { 'content-type': 'application/json', ...headers } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Obj | undefined;
          try { json = JSON.parse(text); } catch { json = undefined; }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
      });
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }

  let uidCounter = 0;
  function review(object: unknown, over: Obj = {}): Obj {
    return {
      apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
      request: {
        uid: `uid-${++uidCounter}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' },
        requestKind: { group: '', version: 'v1', kind: 'Pod' }, namespace: 'shop', operation: 'CREATE',
        userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' }, object, oldObject: null, dryRun: false,
        options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' }, ...over,
      },
    };
  }
  const pod = (meta: Obj = {}, spec: Obj = {}) => ({
    apiVersion: 'v1', kind: 'Pod',
    metadata: { generateName: 'reviews-v2-7d4b9c-', namespace: 'shop', labels: { app: 'reviews' }, ...meta },
    spec: { containers: [{ name: 'reviews', image: 'reviews:2', resources: {} }], ...spec },
  });

  function applyPatch(doc: Obj, ops: Obj[]): Obj {
    const root = structuredClone(doc);
    for (const op of ops) {
      const segs = op.path.split('/').slice(1).map((s: string) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
      const last = segs.pop();
      let parent: any = root;
      for (const s of segs) parent = parent[s];
      if (Array.isArray(parent)) parent.splice(Number(last), 0, op.value);
      else parent[last] = op.value;
      if (op.op !== 'add') throw new Error(`unexpected op ${op.op}`);
    }
    return root;
  }

  t.test('webhook', async (t) => {
    const hook = await startInjectionWebhook({ port: 0, host: '127.0.0.1', cert, key, controlUrl: 'https://127.0.0.1:15010', logger, maxBodyBytes: 256 * 1024 });
    t.teardown(() => hook.close());
    const post = (body: unknown, p = '/inject') => request(hook.port, 'POST', p, typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));

    t.test('injects a pod: AdmissionReview v1 with a base64 JSONPatch', async (t) => {
      const input = pod();
      const rv = review(input);
      const r = await post(rv);
      t.equal(r.status, 200);
      t.equal(r.json?.apiVersion, 'admission.k8s.io/v1');
      t.equal(r.json?.kind, 'AdmissionReview');
      const res = r.json?.response;
      t.equal(res.uid, rv.request.uid, 'uid echoed');
      t.equal(res.allowed, true);
      t.equal(res.patchType, 'JSONPatch');
      const ops = JSON.parse(Buffer.from(res.patch, 'base64').toString('utf8'));
      const out = applyPatch(input, ops);
      t.same(out.spec.containers, input.spec.containers, 'app container untouched');
      const proxy = out.spec.initContainers.find((c: Obj) => c.name === 'pillion-proxy');
      t.equal(proxy.restartPolicy, 'Always');
      t.equal(proxy.args[proxy.args.indexOf('--service') + 1], 'reviews');
      t.equal(proxy.args[proxy.args.indexOf('--control') + 1], 'https://pillion-control.pillion-system.svc:15010',
        'the control server\'s own loopback URL is not what pods should dial');
      t.equal(out.metadata.annotations['pillion.dev/status'], 'injected');
      t.ok(lines.some((l) => /^info injected shop\/reviews-v2-7d4b9c \(service reviews, native sidecar\)/.test(l)), 'logged');
    });

    t.test('/mutate is served too, and the classic mode is honoured', async (t) => {
      const r = await post(review(pod({ annotations: { 'pillion.dev/native-sidecar': 'false' } })), '/mutate');
      const ops = JSON.parse(Buffer.from(r.json?.response.patch, 'base64').toString('utf8'));
      t.ok(ops.some((op: Obj) => op.path === '/spec/containers/0' && op.value.name === 'pillion-proxy'), 'proxy inserted as first container');
    });

    t.test('pods it must not touch: allowed, no patch', async (t) => {
      const untouched = [
        ['opt-out annotation', review(pod({ annotations: { 'pillion.dev/inject': 'false' } }))],
        ['host network', review(pod({}, { hostNetwork: true }))],
        ['already injected', review(applyPatch(pod(), JSON.parse(Buffer.from((await post(review(pod()))).json?.response.patch, 'base64').toString())))],
        ['not a pod', review({ kind: 'Deployment' }, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } })],
        ['an update', review(pod(), { operation: 'UPDATE' })],
        ['a subresource', review(pod(), { subResource: 'ephemeralcontainers' })],
      ] as const;
      for (const [what, rv] of untouched) {
        const r = await post(rv);
        t.equal(r.status, 200, what);
        t.same(r.json?.response, { uid: rv.request.uid, allowed: true }, `${what}: allowed without a patch`);
      }
    });

    t.test('an app running as UID 1337 gets a warning kubectl will show', async (t) => {
      const r = await post(review(pod({}, { securityContext: { runAsUser: 1337 } })));
      t.equal(r.json?.response.allowed, true);
      t.ok(r.json?.response.patch, 'still injected');
      t.same(r.json?.response.warnings, ['pillion: container "reviews" runs as UID 1337, the proxy\'s: its traffic bypasses the sidecar']);
    });

    t.test('a pod asking for the impossible is denied with the reason', async (t) => {
      const rv = review(pod({ annotations: { 'pillion.dev/skip-inbound-ports': 'ssh' } }));
      const r = await post(rv);
      t.equal(r.status, 200);
      t.equal(r.json?.response.uid, rv.request.uid);
      t.equal(r.json?.response.allowed, false);
      t.equal(r.json?.response.status.code, 400);
      t.match(r.json?.response.status.message, /pillion sidecar injection: pillion.dev\/skip-inbound-ports must be/);
    });

    t.test('a review without a pod object is allowed with a warning', async (t) => {
      const rv = review(null);
      const r = await post(rv);
      t.equal(r.json?.response.allowed, true);
      t.match(r.json?.response.warnings[0], /no sidecar injected/);
    });

    t.test('malformed requests: a clear 400, never a crash', async (t) => {
      const cases: [string, string | Buffer, RegExp][] = [
        ['empty body', '', /not JSON/],
        ['not JSON', '{"apiVersion": "admission.k8s.io/v1", ', /not JSON/],
        ['binary garbage', Buffer.from([0xff, 0x00, 0xfe, 0x7b]), /not JSON/],
        ['JSON but not a review', '[1,2,3]', /expected an admission\.k8s\.io\/v1 AdmissionReview/],
        ['v1beta1 review', JSON.stringify({ ...review(pod()), apiVersion: 'admission.k8s.io/v1beta1' }), /expected an admission\.k8s\.io\/v1/],
        ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), /no request\.uid/],
        ['empty uid', JSON.stringify(review(pod(), { uid: '' })), /no request\.uid/],
      ];
      for (const [what, body, pattern] of cases) {
        const r = await post(body);
        t.equal(r.status, 400, what);
        t.match(r.json?.error, pattern, what);
      }
      const weird = await post(review(pod({ labels: 'not-a-map', annotations: ['x'] }, { containers: [{ name: 'a', image: 'a' }], volumes: 'nope' })));
      t.equal(weird.status, 200, 'a pod with nonsense fields still gets an answer');
      t.equal(weird.json?.response.allowed, false, 'denied: spec.volumes is not a list');
      t.match(weird.json?.response.status.message, /spec.volumes is not a list/);
    });

    t.test('size limit, methods, paths', async (t) => {
      const big = JSON.stringify(review(pod({ annotations: { filler: 'x'.repeat(300 * 1024) } })));
      const r = await post(big);
      t.equal(r.status, 413);
      t.match(r.json?.error, /larger than 262144 bytes/);
      const chunked = await new Promise<number>((resolve, reject) => {
        // No content-length: the limit is enforced while reading.
        const req = https.request({ host: '127.0.0.1', servername: 'localhost', port: hook.port, method: 'POST', path: '/inject', ca, agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || (err as NodeJS.ErrnoException).code === 'EPIPE' ? resolve(413) : reject(err)));
        for (let i = 0; i < 40; i++) req.write('x'.repeat(10 * 1024));
        req.end();
      });
      t.equal(chunked, 413, 'chunked body over the limit');
      t.equal((await request(hook.port, 'GET', '/inject')).status, 405);
      t.equal((await request(hook.port, 'GET', '/healthz')).status, 200);
      t.equal((await request(hook.port, 'POST', '/other', '{}')).status, 404);
    });

    t.test('a client that hangs up mid-body does not hurt the server', async (t) => {
      await new Promise<void>((resolve) => {
        const req = https.request({ host: '127.0.0.1', servername: 'localhost', port: hook.port, method: 'POST', path: '/inject', ca, agent: false,
          headers: { 'content-length': '5000' } });
        req.on('error', () => resolve());
        req.write('{"apiVersion":');
        setTimeout(() => { req.destroy(); resolve(); }, 50);
      });
      const r = await post(review(pod()));
      t.equal(r.status, 200, 'still answering');
      t.equal(r.json?.response.allowed, true);
    });

    t.test('plain HTTP to the TLS port gets no answer and does not hurt the server', async (t) => {
      const net = await import('node:net');
      await new Promise<void>((resolve) => {
        const s = net.connect(hook.port, '127.0.0.1', () => s.write('POST /inject HTTP/1.1\r\nhost: x\r\n\r\n'));
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.setTimeout(2000, () => s.destroy());
      });
      t.equal((await request(hook.port, 'GET', '/healthz')).status, 200);
    });
  });

  t.test('a control URL that pods can reach is used as given', async (t) => {
    const hook = await startInjectionWebhook({ port: 0, host: '127.0.0.1', cert, key, controlUrl: 'https://ctl.mesh.example:15010', image: 'reg/pillion:2', logger });
    t.teardown(() => hook.close());
    const r = await request(hook.port, 'POST', '/inject', JSON.stringify(review(pod())));
    const ops = JSON.parse(Buffer.from(r.json?.response.patch, 'base64').toString('utf8'));
    const proxy = ops.find((op: Obj) => op.path === '/spec/initContainers').value[1];
    t.equal(proxy.args[proxy.args.indexOf('--control') + 1], 'https://ctl.mesh.example:15010');
    t.equal(proxy.image, 'reg/pillion:2');
  });
}

if (hasOpenssl) {
  t.test('pillion control serves the webhook when given TLS files', async (t) => {
    const { spawn } = await import('node:child_process');
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-control-hook-'));
    const gen = spawnSync('sh', [path.join(__dirname, '..', 'deploy', 'kubernetes', 'generate-secrets.sh'), tmp], { encoding: 'utf8', timeout: 60_000 });
    t.equal(gen.status, 0, gen.stderr);
    fs.mkdirSync(path.join(tmp, 'data'));
    const child = spawn(process.execPath, [path.join(__dirname, '..', 'bin', 'pillion.js'), 'control', '--host', '127.0.0.1', '--port', '0', '--webhook-port', '0',
      '--data', path.join(tmp, 'data'), '--tls-cert', path.join(tmp, 'tls', 'tls.crt'), '--tls-key', path.join(tmp, 'tls', 'tls.key')], { stdio: ['ignore', 'ignore', 'pipe'] });
    t.teardown(() => {
      child.kill('SIGTERM');
      fs.rmSync(tmp, { recursive: true, force: true });
    });
    let log = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no webhook port in the log within 20 s: ${log}`)), 20_000);
      child.stderr!.on('data', (c: Buffer) => {
        log += c.toString('utf8');
        const m = /"msg":"injection webhook listening"[^\n]*"port":(\d+)/.exec(log);
        if (m) { clearTimeout(timer); resolve(Number(m[1])); }
      });
      child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`pillion control exited ${code}: ${log}`)); });
    });
    const ca = fs.readFileSync(path.join(tmp, 'tls', 'ca.crt'));
    const body = JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'c-1', kind: { group: '', version: 'v1', kind: 'Pod' },
      operation: 'CREATE', namespace: 'shop', object: { metadata: { name: 'p', labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'web' }] } } } });
    const reply = await new Promise<Obj>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', servername: 'pillion-control.pillion-system.svc', port, method: 'POST', path: '/inject', ca, agent: false, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end(body);
    });
    t.equal(reply.response.uid, 'c-1');
    t.equal(reply.response.allowed, true);
    const ops = JSON.parse(Buffer.from(reply.response.patch, 'base64').toString('utf8'));
    const proxy = ops.find((op: Obj) => op.path === '/spec/initContainers').value.find((c: Obj) => c.name === 'pillion-proxy');
    t.equal(proxy.args[proxy.args.indexOf('--control') + 1], 'https://pillion-control.pillion-system.svc:15010',
      'pods are pointed at the in-cluster Service, not the control server\'s own listen address');
  });
}
