// The sandbox's topology file and the CLI's refusals, without building anything.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { decodeTopology, DEMO_TOPOLOGY_TEXT, parseWrk, TopologyError } from '../deploy/sandbox';

const BIN = path.join(__dirname, '..', 'bin', 'pillion.js');

function cli(args: string[], asUid?: number) {
  const prefix = asUid === undefined ? [] : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups'];
  const argv = [...prefix, 'env', '-i', `PATH=${process.env.PATH}`, process.execPath, BIN, 'sandbox', ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function topologyError(text: string): string {
  try {
    decodeTopology(text, 'topo.yaml');
  } catch (err) {
    if (err instanceof TopologyError) return err.message;
    throw err;
  }
  return '';
}

t.test('the demo topology: frontend calls backend on 8080, with policies', async (t) => {
  const topo = decodeTopology(DEMO_TOPOLOGY_TEXT, 'demo');
  t.same(topo.pods.map((p) => [p.name, p.port, p.calls]), [['frontend', 8080, ['backend']], ['backend', 8080, []]]);
  t.equal(topo.subnet, '10.251.0.0/24');
  const backend = topo.decoded.find((p) => p.service === 'backend')!;
  t.ok(backend.circuitBreaker, 'the frontend\'s breaker for backend');
  t.ok(backend.routes.some((r) => r.rateLimit), 'a rate-limited route on the backend');
});

t.test('invalid topologies are refused with the file and the reason', async (t) => {
  const cases: [string, RegExp][] = [
    ['pods: []', /pods must be a non-empty list/],
    ['pods: [{ name: Bad_Name }]', /pods\[0\]\.name must be a DNS label/],
    ['pods: [{ name: net }]', /not "net"/],
    ['pods: [{ name: a }, { name: a }]', /pod a is listed twice/],
    ['pods: [{ name: a, calls: [b] }]', /pod a calls b, which is not a pod/],
    ['pods: [{ name: a, port: 15001 }]', /not a proxy port/],
    ['pods: [{ name: a, image: x }]', /pods\[0\]: unknown field image/],
    ['subnet: 10.0.0.0/16\npods: [{ name: a }]', /subnet must be an IPv4 \/24/],
    ['pods: [{ name: a }]\npolicies: [{ apiVersion: pillion.dev/v1alpha1, kind: TrafficPolicy, metadata: { name: a }, spec: { service: a, timeout: soon } }]', /invalid policies: .*spec\.timeout/],
    ['nodes: 3', /unknown field nodes/],
    ['[1, 2', /not YAML/],
  ];
  for (const [text, want] of cases) {
    const msg = topologyError(text);
    t.match(msg, want, text);
    t.match(msg, /^topo\.yaml: /, 'names the file');
  }
  t.equal(topologyError('pods: [{ name: a }]'), '', 'a minimal topology is fine (port defaults to 8080)');
});

t.test('CLI: usage and file errors are one line with a non-zero exit', async (t) => {
  for (const args of [[], ['sideways'], ['up', 'extra'], ['up', '--config-source', 'etcd'], ['down', '-f', 'x.yaml']]) {
    const r = cli(args);
    t.equal(r.code, 2, `sandbox ${args.join(' ')}`);
    t.match(r.err, /^pillion sandbox: /);
    t.equal(r.err.trim().split('\n').length, 1);
  }
  const missing = cli(['up', '-f', '/nonexistent/topology.yaml']);
  t.equal(missing.code, 1);
  t.match(missing.err, /^pillion sandbox: cannot read \/nonexistent\/topology.yaml: ENOENT/);
});

t.test('CLI: down with no state removes nothing and says so', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-sandbox-empty-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const r = cli(['down', '--state-dir', dir]);
  t.equal(r.code, 0);
  t.match(r.err, /nothing to remove/);
  t.ok(fs.existsSync(dir), 'a directory down did not make is left alone');
});

const canDropRoot = process.geteuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0;
t.test('CLI: up without root fails before touching anything', { skip: canDropRoot ? false : 'needs root and setpriv to run the CLI as an unprivileged user' }, async (t) => {
  const r = cli(['up', '--state-dir', '/nonexistent/state'], 65534);
  t.equal(r.code, 1);
  t.match(r.err, /^pillion sandbox: must run as root/);
  t.equal(r.err.trim().split('\n').length, 1);
});

t.test('sandbox bench reads wrk\'s report', async (t) => {
  const report = `Running 8s test @ http://backend:8080/
  1 threads and 32 connections
  Latency Distribution
     50%    2.51ms
     75%    3.10ms
     90%    4.00ms
     99%  119.65ms
  19216 requests in 8.00s, 5.01MB read
  Non-2xx or 3xx responses: 7
Requests/sec:   2402.03
Transfer/sec:    641.00KB
`;
  t.same(parseWrk(report), { requestsPerSecond: 2402.03, p50Ms: 2.51, p99Ms: 119.65, non2xx: 7 });
  t.equal(parseWrk(report.replace('2.51ms', '850.00us')).p50Ms, 0.85);
  t.equal(parseWrk(report.replace('119.65ms', '1.20s')).p99Ms, 1200);
});
