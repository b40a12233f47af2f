// Bearer tokens of the control server: generated on first start (mode 0600) or read from a
// given file, compared in constant time, never logged.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A token held only as its hash, so that comparing costs the same whatever was presented. */
export interface TokenCheck {
  matches(presented: string | undefined): boolean;
}

export function createTokenCheck(token: string): TokenCheck {
  const expected = createHash('sha256').update(token).digest();
  return {
    matches(presented) {
      // Hash first: timingSafeEqual needs equal lengths, and hashing hides the token's length.
      const got = createHash('sha256').update(presented ?? '').digest();
      return timingSafeEqual(expected, got) && presented !== undefined;
    },
  };
}

/** `Authorization: Bearer X` -> X; anything else -> undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

export function readTokenFile(file: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token)) throw new Error(`token file ${file} must hold one token of at least 16 characters`);
  return token;
}

/**
 * The token in `given` if set, else `<dataDir>/<name>`, created with 32 random bytes on first
 * start. Created with O_EXCL and mode 0600 so it is never readable by others, not even briefly.
 */
export function loadOrCreateToken(dataDir: string, name: string, given: string | undefined): { token: string; file: string; created: boolean } {
  if (given !== undefined) return { token: readTokenFile(given), file: given, created: false };
  const file = path.join(dataDir, name);
  try {
    const token = randomBytes(32).toString('base64url');
    fs.writeFileSync(file, `${token}\n`, { flag: 'wx', mode: 0o600 });
    return { token, file, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return { token: readTokenFile(file), file, created: false };
}
