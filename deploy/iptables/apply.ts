// Running iptables: install and cleanup as single iptables-restore transactions, with
// one-line typed errors for the usual reasons (not root, no iptables, rejected rules).
import { spawnSync } from 'node:child_process';
import { cleanupRuleset, Family, installRuleset, InterceptOptions, ownState } from './rules';

export type IptablesErrorCode = 'not-root' | 'no-iptables' | 'iptables-failed';

export class IptablesError extends Error {
  constructor(readonly code: IptablesErrorCode, message: string) {
    super(message);
    this.name = 'IptablesError';
  }
}

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly error?: NodeJS.ErrnoException;
}

/** How commands are run: injected so tests can check what would be run without root. */
export type Runner = (command: string, args: readonly string[], input?: string) => RunResult;

export const spawnRunner: Runner = (command, args, input) => {
  const r = spawnSync(command, [...args], { input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error as NodeJS.ErrnoException | undefined };
};

export interface IptablesEnv {
  readonly run: Runner;
  /** Effective UID; undefined where there is none (not Linux). */
  readonly uid: number | undefined;
}

export const processEnv: IptablesEnv = { run: spawnRunner, uid: process.geteuid?.() };

function check(env: IptablesEnv, what: string, r: RunResult): string {
  if (r.error && r.error.code === 'ENOENT') {
    throw new IptablesError('no-iptables', `${what}: not found on PATH; install iptables (e.g. apt-get install iptables)`);
  }
  if (r.error) throw new IptablesError('iptables-failed', `${what}: ${r.error.message}`);
  if (r.status !== 0) {
    const detail = r.stderr.trim().split('\n').filter(Boolean).slice(0, 2).join('; ') || `exit status ${r.status}`;
    if (/permission denied|must be root|Operation not permitted/i.test(detail)) {
      throw new IptablesError('not-root', `${what} needs root (CAP_NET_ADMIN): ${detail}`);
    }
    throw new IptablesError('iptables-failed', `${what} failed: ${detail}`);
  }
  return r.stdout;
}

function requireRoot(env: IptablesEnv): void {
  if (env.uid !== undefined && env.uid !== 0) {
    throw new IptablesError('not-root', `must run as root to change iptables rules (uid is ${env.uid})`);
  }
}

/** iptables or ip6tables, and their restore commands. */
function tools(family: Family): { list: string; restore: string } {
  return family === 4 ? { list: 'iptables', restore: 'iptables-restore' } : { list: 'ip6tables', restore: 'ip6tables-restore' };
}

/** The nat table as `iptables -t nat -S` lists it. */
export function listNat(env: IptablesEnv = processEnv, family: Family = 4): string {
  const { list } = tools(family);
  return check(env, `${list} -t nat -S`, env.run(list, ['-w', '5', '-t', 'nat', '-S']));
}

/** Whether ip6tables can be used at all here (cleanup of IPv6 rules is best effort). */
export function hasIp6tables(env: IptablesEnv = processEnv): boolean {
  const r = env.run('ip6tables', ['-w', '5', '-t', 'nat', '-S']);
  return !r.error && r.status === 0;
}

export interface InstallResult {
  readonly ruleset: string;
  /** Jumps that were already there (a second run) and were replaced. */
  readonly replacedJumps: number;
}

export function installRules(o: InterceptOptions, env: IptablesEnv = processEnv, family: Family = 4): InstallResult {
  requireRoot(env);
  const { restore } = tools(family);
  const { jumps } = ownState(listNat(env, family));
  const ruleset = installRuleset(o, jumps, family);
  check(env, restore, env.run(restore, ['-w', '5', '--noflush'], ruleset));
  return { ruleset, replacedJumps: jumps.length };
}

/** Removes our jumps and chains; undefined when there was nothing of ours to remove. */
export function cleanupRules(env: IptablesEnv = processEnv, dryRun = false, family: Family = 4): string | undefined {
  requireRoot(env);
  const { restore } = tools(family);
  const ruleset = cleanupRuleset(listNat(env, family));
  if (ruleset !== undefined && !dryRun) check(env, restore, env.run(restore, ['-w', '5', '--noflush'], ruleset));
  return ruleset;
}
