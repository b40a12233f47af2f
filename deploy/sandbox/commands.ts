// Running ip/iptables and friends: synchronous, each failure one line with the command.
import { spawnSync } from 'node:child_process';

export class SandboxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxError';
  }
}

export interface CommandResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function tryRun(command: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CommandResult {
  const r = spawnSync(command, [...args], { encoding: 'utf8', input: opts.input, env: opts.env, timeout: opts.timeoutMs ?? 30_000 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return { status: null, stdout: '', stderr: code === 'ENOENT' ? `${command}: not found on PATH` : r.error.message };
  }
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

export function run(command: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): string {
  const r = tryRun(command, args, opts);
  if (r.status !== 0) {
    const detail = r.stderr.trim().split('\n').filter(Boolean).slice(-2).join('; ') || `exit status ${r.status}`;
    throw new SandboxError(`${command} ${args.join(' ')}: ${detail}`);
  }
  return r.stdout;
}

export function netnsExists(name: string): boolean {
  return tryRun('ip', ['netns', 'list']).stdout.split('\n').some((l) => l.split(' ')[0] === name);
}
