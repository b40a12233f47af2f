// Test helpers: upstream servers, `pillion proxy` child processes and a small HTTP client.
import http, { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { spawn, ChildProcess } from 'node:child_process';
import net, { AddressInfo } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const ROOT = path.join(__dirname, '..', '..');
export const BIN = path.join(ROOT, 'bin', 'pillion.js');

export interface Upstream {
  readonly port: number;
  readonly server: http.Server;
  hits: number;
  close(): Promise<void>;
}

export async function startUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Upstream> {
  const up = { hits: 0 } as Upstream & { hits: number };
  const server = http.createServer((req, res) => {
    up.hits++;
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  Object.assign(up, {
    port: (server.address() as AddressInfo).port,
    server,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  });
  return up;
}

/**
 * A loopback port that refuses connections. A port just closed would not do: a socket bound to
 * port 0 (this proxy's own listeners, or another test file's running alongside) can be handed
 * it at once (seen: a request meant for a dead endpoint looped through the proxy's own
 * outbound listener to 431). Ports below 1024 are never handed out that way.
 */
export async function refusedPort(): Promise<number> {
  for (const port of [1, 9, 13]) {
    const refused = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(false); });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  throw new Error('every candidate port below 1024 accepts connections on 127.0.0.1');
}

export function policyFile(yaml: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pillion-test-'));
  const file = path.join(dir, 'policy.yaml');
  writeFileSync(file, yaml);
  return file;
}

export function policy(name: string, spec: string): string {
  return `apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: { name: ${name} }\nspec:\n${spec.replace(/^/gm, '  ')}\n`;
}

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly ports: { inbound: number; outbound: number; admin: number };
  /** Parsed access-log lines so far. */
  accessLog(): Record<string, unknown>[];
  stderr(): string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

/** Spawn `pillion proxy` on ephemeral ports and wait until it is listening. */
export async function spawnProxy(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProxyProcess> {
  const child = spawn(process.execPath, [BIN, 'proxy', '--inbound-port', '0', '--outbound-port', '0', '--admin-port', '0', ...args], {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c) => { out += c; });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const ports = await new Promise<ProxyProcess['ports']>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`proxy did not start: ${err}`)), 15000);
    child.stderr!.on('data', (c) => {
      err += c;
      const m = /"msg":"listening".*?"inbound":(\d+),"outbound":(\d+),"admin":(\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ inbound: Number(m[1]), outbound: Number(m[2]), admin: Number(m[3]) });
      }
    });
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`proxy exited ${code}: ${err}`)); });
  });
  return {
    child, ports, exited,
    accessLog: () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)),
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  trailers: NodeJS.Dict<string>;
}

export function request(opts: http.RequestOptions & { body?: string | Buffer }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), trailers: res.trailers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

export async function admin(port: number, p: string, method = 'GET'): Promise<Reply> {
  return request({ port, path: p, method });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
