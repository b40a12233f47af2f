// The bench's setup step: find the programs scenarios need and, when root with apt-get,
// install the missing ones; otherwise those scenarios are reported as skipped with why.
import { accessSync, constants } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** Debian package that provides each program the bench may use. */
const PACKAGES: Record<string, string> = {
  wrk: 'wrk',
  nginx: 'nginx-light',
  haproxy: 'haproxy',
  'redis-server': 'redis-server',
};

/** Absolute path of `name` on PATH or in the sbin folders (nginx and haproxy live there). */
export function programPath(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = path.join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface SetupReport {
  readonly installed: readonly string[];
  /** Why nothing was installed, when something was missing. */
  readonly note: string | undefined;
}

export function ensurePrograms(programs: readonly string[], allowInstall: boolean, log: (line: string) => void): SetupReport {
  const missing = programs.filter((p) => !programPath(p));
  if (missing.length === 0) return { installed: [], note: undefined };
  const packages = [...new Set(missing.map((p) => PACKAGES[p]).filter((p): p is string => !!p))];
  if (!allowInstall) return { installed: [], note: `missing ${missing.join(', ')}; install disabled (--no-install)` };
  if (process.getuid?.() !== 0 || !programPath('apt-get')) {
    return { installed: [], note: `missing ${missing.join(', ')}; not root with apt-get, so not installed (apt-get install ${packages.join(' ')})` };
  }
  log(`setup: installing ${packages.join(' ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'ignore', env, timeout: 600_000 });
  } catch (err) {
    return { installed: [], note: `apt-get install ${packages.join(' ')} failed: ${(err as Error).message.split('\n')[0]}` };
  }
  return { installed: missing.filter((p) => programPath(p)), note: undefined };
}
