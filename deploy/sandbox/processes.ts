// Long-running sandbox processes (apps, sidecars, control server): started detached inside a
// pod's namespace, logged to files, stopped by PID checked against its start time.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import type { ProcessRecord } from './state';

export interface StartOptions {
  readonly role: string;
  readonly netns: string;
  readonly argv: readonly string[];
  /** Run as this UID/GID (the sidecar: 1337), through setpriv. */
  readonly uid?: number;
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly stdoutFile: string;
  readonly stderrFile: string;
}

export function startInNetns(o: StartOptions): ProcessRecord {
  const asUser = o.uid === undefined ? [] : ['setpriv', `--reuid=${o.uid}`, `--regid=${o.uid}`, '--clear-groups', '--'];
  const out = fs.openSync(o.stdoutFile, 'a');
  const err = fs.openSync(o.stderrFile, 'a');
  try {
    // `ip netns exec` and setpriv both exec in place: the PID we get is the process itself.
    const child = spawn('ip', ['netns', 'exec', o.netns, ...asUser, ...o.argv], {
      cwd: o.cwd, env: o.env ?? process.env, detached: true, stdio: ['ignore', out, err],
    });
    if (child.pid === undefined) throw new Error(`could not start ${o.role}`);
    child.unref();
    return { role: o.role, netns: o.netns, pid: child.pid, startTime: startTimeOf(child.pid) ?? '' };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
  }
}

/** Field 22 of /proc/PID/stat; undefined when the process is gone. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; count fields after its closing paren.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

export function isRunning(p: ProcessRecord): boolean {
  const st = startTimeOf(p.pid);
  return st !== undefined && (p.startTime === '' || st === p.startTime);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** SIGTERM (a sidecar drains), then SIGKILL whatever is left after `graceMs`. */
export async function stopProcesses(list: readonly ProcessRecord[], graceMs = 6000): Promise<void> {
  const mine = list.filter(isRunning);
  for (const p of mine) signal(p.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (mine.some(isRunning) && Date.now() < deadline) await sleep(50);
  for (const p of mine) if (isRunning(p)) signal(p.pid, 'SIGKILL');
  const killDeadline = Date.now() + 2000;
  while (mine.some(isRunning) && Date.now() < killDeadline) await sleep(20);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
