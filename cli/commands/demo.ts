// `pillion demo` (what `npm start` runs): a control server, two services (frontend calling
// backend) each with its sidecar subscribed to it, a sample policy, and a walkthrough.
// No root: the sidecars run in explicit mode (the frontend calls its sidecar's outbound port).
import { spawn, ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startControlServer, ControlServer } from '../../control';
import { createStderrLogger, Logger } from '../../proxy/runtime/logger';
import { SIDECAR_NODE_FLAGS } from '../../proxy/runtime/node-flags';
import { parseFlags, portFlag } from '../args';
import { CliError } from '../errors';

/** Every port is the base plus a fixed offset, so the printed commands work for any base. */
export function demoPorts(base: number) {
  return {
    control: base + 10,
    frontend: { admin: base, outbound: base + 1, inbound: base + 6, app: base + 30 },
    backend: { admin: base + 20, outbound: base + 21, inbound: base + 26, app: base + 31 },
  };
}
type Ports = ReturnType<typeof demoPorts>;

export function demoPolicy(ports: Ports): string {
  return `# The demo mesh's policy. Edit and re-apply: npx pillion apply -f <this file>
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: backend }
spec:
  service: backend
  endpoints: [127.0.0.1:${ports.backend.inbound}]   # the backend's sidecar (inbound)
  timeout: 2s
  retries: { attempts: 2, perTryTimeout: 500ms, on: [connect-failure, reset, gateway-error] }
  circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 5, windowSeconds: 10, resetTimeout: 15s }
  rateLimit: { requestsPerSecond: 5, burst: 10 }   # enforced by the backend's sidecar
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: frontend }
spec:
  service: frontend
  endpoints: [127.0.0.1:${ports.frontend.inbound}]
  timeout: 5s
`;
}

function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'bin', 'pillion.js'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new CliError('pillion demo: cannot find bin/pillion.js');
    dir = up;
  }
  return dir;
}

/** backend: answers JSON; POST /fail makes it answer 500 until POST /recover. */
function backendApp(): http.Server {
  let failing = false;
  return http.createServer((req, res) => {
    req.resume();
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (req.method === 'POST' && req.url === '/fail') { failing = true; return send(200, { failing }); }
    if (req.method === 'POST' && req.url === '/recover') { failing = false; return send(200, { failing }); }
    if (failing) return send(500, { service: 'backend', error: 'failing on purpose (POST /recover to stop)' });
    send(200, { service: 'backend', message: 'hello from backend', path: req.url });
  });
}

/** frontend: each request calls http://backend/ through its own sidecar and reports what came back. */
function frontendApp(outboundPort: number): http.Server {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  return http.createServer((req, res) => {
    req.resume();
    const up = http.request({ host: '127.0.0.1', port: outboundPort, path: req.url, method: 'GET', headers: { host: 'backend' }, agent }, (bres) => {
      const chunks: Buffer[] = [];
      bres.on('data', (c: Buffer) => chunks.push(c));
      bres.on('end', () => {
        const status = bres.statusCode ?? 502;
        let body: unknown = Buffer.concat(chunks).toString('utf8').trim();
        try { body = JSON.parse(body as string); } catch { /* keep the text */ }
        const reason = bres.headers['x-pillion-reason'];
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ service: 'frontend', backend: { status, ...(reason ? { reason } : {}), body } })}\n`);
      });
    });
    up.on('error', (err) => {
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ service: 'frontend', error: `cannot reach my sidecar: ${err.message}` })}\n`);
    });
    up.end();
  });
}

function listen(server: http.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new CliError(`pillion demo: cannot listen on 127.0.0.1:${port}: ${err.code}; choose other ports with --port-base N`)));
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new CliError(`pillion demo: ${what} did not happen within ${ms / 1000}s; see the logs above`);
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags('demo', argv, { 'port-base': { type: 'string' }, 'keep-data': { type: 'boolean' } });
  const base = portFlag('demo', 'port-base', values['port-base'] ?? process.env.PILLION_DEMO_PORT_BASE, 15000);
  if (base < 1024 || base > 65500) throw new CliError('pillion demo: --port-base must be between 1024 and 65500', 2);
  const ports = demoPorts(base);
  const root = repoRoot();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-demo-'));
  const controlLog = fs.openSync(path.join(dataDir, 'control.log'), 'a');
  const logger: Logger = createFileLogger(controlLog);
  const say = (s = '') => process.stdout.write(`${s}\n`);

  const children: { name: string; child: ChildProcess }[] = [];
  const servers: http.Server[] = [];
  let control: ControlServer | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await Promise.all(children.map(({ child }) => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => { child.kill('SIGKILL'); resolve(); }, 4000).unref();
    })));
    for (const s of servers) { s.closeAllConnections(); s.close(); }
    await control?.close();
    fs.closeSync(controlLog);
    if (!values['keep-data']) fs.rmSync(dataDir, { recursive: true, force: true });
    process.exitCode = code;
  };
  let finish!: () => void;
  const stopped = new Promise<void>((resolve) => { finish = resolve; });
  const onSignal = () => { say('\nstopping the demo...'); void stop(0).then(finish); };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    control = await startControlServer({ port: ports.control, host: '127.0.0.1', dataDir, logger });
    const backend = backendApp(), frontend = frontendApp(ports.frontend.outbound);
    servers.push(backend, frontend);
    await listen(backend, ports.backend.app);
    await listen(frontend, ports.frontend.app);

    const policyFile = path.join(dataDir, 'policy.yaml');
    fs.writeFileSync(policyFile, demoPolicy(ports));
    for (const [service, p] of [['frontend', ports.frontend], ['backend', ports.backend]] as const) {
      const out = fs.openSync(path.join(dataDir, `${service}-sidecar.log`), 'a');
      const child = spawn(process.execPath, [
        ...SIDECAR_NODE_FLAGS, path.join(root, 'bin', 'pillion.js'), 'proxy', '--service', service, '--proxy-id', `${service}-demo`,
        '--control', control.url, '--token-file', control.proxyTokenFile, '--cache-dir', path.join(dataDir, `${service}-cache`),
        '--app', `127.0.0.1:${p.app}`, '--inbound-port', String(p.inbound), '--outbound-port', String(p.outbound),
        '--admin-port', String(p.admin), '--drain-timeout', '1s',
        // Each sidecar asks only for what it needs: its own policy and the services it calls.
        ...(service === 'frontend' ? ['--egress', 'backend'] : []),
      ], { stdio: ['ignore', out, out], env: { ...process.env, OTEL_TRACES_SAMPLER: process.env.OTEL_TRACES_SAMPLER ?? 'always_off' } });
      fs.closeSync(out);
      children.push({ name: service, child });
      child.once('exit', (code, signal) => {
        if (stopping) return;
        process.stderr.write(`pillion demo: the ${service} sidecar exited (${signal ?? code}); see ${path.join(dataDir, `${service}-sidecar.log`)}\n`);
        values['keep-data'] = true;
        void stop(1).then(finish);
      });
    }

    // The sample policy goes through the same path as `pillion apply`.
    const { parseAllDocuments } = await import('yaml');
    const documents = parseAllDocuments(fs.readFileSync(policyFile, 'utf8')).map((d) => d.toJS());
    const { version } = control.store.apply(documents);
    control.hub.notify();
    const c = control;
    await waitFor('both sidecars acknowledging the policy', async () => {
      const rows = c.hub.status();
      return rows.length === 2 && rows.every((r) => r.state === 'SYNCED' && r.ackedVersion === version);
    });
    for (const p of [ports.frontend, ports.backend]) {
      await waitFor(`the sidecar on ${p.admin} becoming ready`, async () => (await fetch(`http://127.0.0.1:${p.admin}/ready`)).status === 200);
    }
  } catch (err) {
    values['keep-data'] = true;
    await stop(1);
    if (err instanceof CliError) throw err;
    throw new CliError(`pillion demo: ${(err as Error).message}; logs in ${dataDir}`);
  }

  printWalkthrough(say, ports, dataDir, control!);
  await stopped;
  return process.exitCode === undefined ? 0 : Number(process.exitCode);
}

function createFileLogger(fd: number): Logger {
  const write = (level: string, msg: string, fields?: Record<string, unknown>) => {
    fs.writeSync(fd, `${JSON.stringify({ time: new Date().toISOString(), level, component: 'control', msg, ...fields })}\n`);
  };
  return { info: (m, f) => write('info', m, f), warn: (m, f) => write('warn', m, f), error: (m, f) => write('error', m, f) };
}

function printWalkthrough(say: (s?: string) => void, ports: Ports, dataDir: string, control: ControlServer): void {
  const ctl = ports.control === 15010 ? '' : ` --control ${control.url}`;
  const fe = `http://127.0.0.1:${ports.frontend.inbound}`;
  say(`Pillion demo mesh is up (data and logs in ${dataDir})

  control server     ${control.url}
  frontend           app 127.0.0.1:${ports.frontend.app}, sidecar inbound ${ports.frontend.inbound}, outbound ${ports.frontend.outbound}, admin ${ports.frontend.admin}
  backend            app 127.0.0.1:${ports.backend.app}, sidecar inbound ${ports.backend.inbound}, outbound ${ports.backend.outbound}, admin ${ports.backend.admin}

  curl -> frontend sidecar (${ports.frontend.inbound}) -> frontend app -> frontend sidecar (${ports.frontend.outbound}, Host: backend)
       -> backend sidecar (${ports.backend.inbound}) -> backend app

Try it (in another terminal, from this checkout):

  export PILLION_TOKEN=$(cat ${control.adminTokenFile})

1. A call through the mesh:
     curl -s ${fe}/

2. The rate limit (backend: 5 requests/s, burst 10), enforced by the backend's sidecar:
     curl -s -o /dev/null -w '%{http_code} ' '${fe}/?i=[1-20]'; echo
   The last ones are 429 (reason rate-limited); the headers say why:
     curl -si -H 'Host: backend' http://127.0.0.1:${ports.frontend.outbound}/ | grep -i -E '^HTTP|x-pillion-reason|x-ratelimit|retry-after'

3. Make the backend fail and watch the frontend's breaker open (5 failures, 50%):
     curl -s -X POST http://127.0.0.1:${ports.backend.app}/fail
     for i in $(seq 20); do curl -s ${fe}/; sleep 0.3; done
   500s first, then 503 with "reason":"circuit-open": the backend is no longer called.
     curl -s http://127.0.0.1:${ports.frontend.admin}/clusters
     curl -s -X POST http://127.0.0.1:${ports.backend.app}/recover     # closes again after 15s

4. Both sidecars are subscribed and SYNCED:
     npx pillion status${ctl}
     npx pillion history${ctl}
   or open ${control.url}/ (the dashboard; paste the admin token)

5. Apply a change and see it arrive:
     sed -i 's/requestsPerSecond: 5,/requestsPerSecond: 50,/' ${path.join(dataDir, 'policy.yaml')}
     npx pillion apply -f ${path.join(dataDir, 'policy.yaml')}${ctl} && npx pillion status${ctl}
     curl -s http://127.0.0.1:${ports.backend.admin}/config_dump | head -c 300; echo
   Undo it with: npx pillion rollback${ctl}

Ctrl-C stops everything.
demo ready`);
}
