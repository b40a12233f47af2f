// The last good config on disk, so that a proxy restarted while the control server is away
// starts with it. Written atomically (temp file, fsync, rename), readable by the proxy only.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CachedConfig {
  readonly version: number;
  readonly documents: readonly unknown[];
}

const FILE = 'config.json';

export function readCachedConfig(cacheDir: string): CachedConfig | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(cacheDir, FILE), 'utf8');
  } catch {
    return undefined;
  }
  try {
    const value = JSON.parse(text) as { version?: unknown; documents?: unknown };
    if (!Number.isSafeInteger(value.version) || !Array.isArray(value.documents)) return undefined;
    return { version: value.version as number, documents: value.documents };
  } catch {
    // A torn file cannot happen with rename, but a hand-edited one can: ignore it.
    return undefined;
  }
}

export function writeCachedConfig(cacheDir: string, config: CachedConfig): void {
  fs.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const file = path.join(cacheDir, FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.fchmodSync(fd, 0o600); // a stale temp file from a crashed run may have other bits
    fs.writeSync(fd, JSON.stringify({ version: config.version, documents: config.documents, savedAt: new Date().toISOString() }));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
