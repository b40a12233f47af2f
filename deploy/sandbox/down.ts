// `pillion sandbox down`: remove what the state file says `up` made, and nothing else.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { netnsExists, SandboxError, tryRun } from './commands';
import { stopProcesses } from './processes';
import { readState, SandboxState, stateFile } from './state';

export async function sandboxDown(stateDir: string, log: (line: string) => void): Promise<boolean> {
  const state = readState(stateDir);
  if (state && process.geteuid?.() !== 0) throw new SandboxError('must run as root (it deletes network namespaces)');
  if (!state) {
    log(`no sandbox state in ${stateDir}: nothing to remove`);
    return false;
  }
  await teardown(stateDir, state, log);
  return true;
}

/** Best effort at every step: one failure must not leave the rest behind. */
export async function teardown(stateDir: string, state: SandboxState, log: (line: string) => void): Promise<void> {
  await stopProcesses(state.processes);
  for (const ns of [...state.namespaces].reverse()) {
    if (!netnsExists(ns)) continue;
    // Anything still running in a namespace we made is ours too (e.g. a child of the app).
    const pids = tryRun('ip', ['netns', 'pids', ns]).stdout.split('\n').map(Number).filter((n) => n > 0);
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    const r = tryRun('ip', ['netns', 'del', ns]);
    if (r.status !== 0) log(`could not delete network namespace ${ns}: ${r.stderr.trim()}`);
  }
  // Children before their parent (/etc/netns itself, when up had to make it).
  for (const dir of [...state.etcDirs].reverse()) {
    fs.rmSync(path.join(dir, 'hosts'), { force: true });
    try {
      fs.rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log(`left ${dir}: ${(err as Error).message}`);
    }
  }
  // Our files in the state directory; the directory itself only if up made it.
  for (const name of ['logs', 'pods', 'control', 'policies.yaml']) fs.rmSync(path.join(stateDir, name), { recursive: true, force: true });
  fs.rmSync(stateFile(stateDir), { force: true });
  if (state.createdStateDir) {
    try { fs.rmdirSync(stateDir); } catch (err) { log(`left ${stateDir}: ${(err as Error).message}`); }
  }
}
