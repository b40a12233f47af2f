// What `sandbox up` created, written after every step, so that `down` removes exactly that
// (also after an `up` that failed half-way or was killed).
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface ProcessRecord {
  readonly role: string;
  readonly netns: string;
  readonly pid: number;
  /** /proc/PID/stat start time: a recycled PID is never mistaken for ours. */
  readonly startTime: string;
}

export interface SandboxState {
  readonly version: 1;
  /** Network namespaces, in creation order. */
  readonly namespaces: string[];
  /** /etc/netns/<ns> directories (per-pod hosts files). */
  readonly etcDirs: string[];
  readonly processes: ProcessRecord[];
  /** Filled once `up` finished: what the user needs to reach things. */
  /** Whether up made the state directory itself (then down removes it too). */
  createdStateDir?: boolean;
  ready?: { controlUrl: string; pods: { name: string; ip: string; port: number }[] };
}

export const DEFAULT_STATE_DIR = '/run/pillion-sandbox';

export function stateFile(dir: string): string {
  return path.join(dir, 'state.json');
}

export function readState(dir: string): SandboxState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(stateFile(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const s = JSON.parse(text) as SandboxState;
  if (s.version !== 1 || !Array.isArray(s.namespaces) || !Array.isArray(s.processes)) throw new Error(`${stateFile(dir)} is not a sandbox state file`);
  return s;
}

/** Atomic write: a crash mid-write must not lose the record of what exists. */
export function writeState(dir: string, state: SandboxState): void {
  const file = stateFile(dir);
  fs.writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  fs.renameSync(`${file}.tmp`, file);
}

export function emptyState(): SandboxState {
  return { version: 1, namespaces: [], etcDirs: [], processes: [] };
}
