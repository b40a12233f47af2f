// Starting and stopping the processes under test: each one is a child we own, waited for
// until it answers, and ended by its own pid (never by name).
import { spawn, ChildProcess, StdioOptions } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Resolves once the process has exited. */
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** stdout is discarded (Pillion's access log) unless a file is given; stderr goes to logFile. */
  readonly logFile: string;
  readonly stdoutFile?: string;
  readonly cwd?: string;
}

export function startChild(opts: StartOptions): Child {
  const errFd = openSync(opts.logFile, 'a');
  const outFd = opts.stdoutFile ? openSync(opts.stdoutFile, 'a') : 'ignore';
  const stdio: StdioOptions = ['ignore', outFd, errFd];
  const proc = spawn(opts.command, opts.args as string[], { env: opts.env ?? process.env, stdio, cwd: opts.cwd });
  closeSync(errFd);
  if (typeof outFd === 'number') closeSync(outFd);
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.once('error', () => resolve(-1));
  });
  if (proc.pid === undefined) throw new Error(`${opts.name}: could not start ${opts.command}`);
  const pid = proc.pid;
  return {
    name: opts.name, proc, pid, exited,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A port free right now on 127.0.0.1 (the child binds it a moment later). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * A port freePort found can be taken again before the server started on it binds it: the kernel
 * hands the same ephemeral range to the outgoing connections of everything else running (seen:
 * a side-by-side pair lost to EADDRINUSE). `start` picks its ports afresh on each try; an error
 * that does not say EADDRINUSE, or the last try's, is thrown.
 */
export async function retryOnAddressInUse<T>(start: () => Promise<T>, tries = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= tries || !/EADDRINUSE/.test(String((err as Error)?.message ?? err))) throw err;
    }
  }
}

function probe(url: string, host: string | undefined): Promise<number> {
  return new Promise((resolve) => {
    const req = http.get(url, { headers: host ? { host } : {}, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

/** Polls `url` until it answers 2xx, the child dies, or `timeoutMs` passes. */
export async function waitForHttp(child: Child, url: string, opts: { host?: string; timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let last = 0;
  while (Date.now() < deadline) {
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`${child.name} exited (code ${child.proc.exitCode ?? child.proc.signalCode}) before answering ${url}`);
    }
    last = await probe(url, opts.host);
    if (last >= 200 && last < 300) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${child.name} did not answer 2xx at ${url} within ${opts.timeoutMs ?? 15_000} ms (last status ${last || 'none'})`);
}

/** Start a child and wait until `url` answers 2xx; a child that never does is stopped, not left behind. */
export async function startAnswering(opts: StartOptions, url: string, wait: { host?: string; timeoutMs?: number } = {}): Promise<Child> {
  const child = startChild(opts);
  try {
    await waitForHttp(child, url, wait);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return child;
}
