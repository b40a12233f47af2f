// Finding and loading the compiled SO_ORIGINAL_DST addon, with the reason when it is absent.
import * as path from 'node:path';
import * as fs from 'node:fs';

export type OriginalDstAnswer =
  | { readonly address: string; readonly port: number; readonly family: 4 | 6 }
  | { readonly errno: number; readonly error: string };

export interface OriginalDstAddon {
  getOriginalDst(fd: number): OriginalDstAnswer;
}

const BUILT = path.join('proxy', 'transparent', 'native', 'build', 'Release', 'original_dst.node');

/** From source (ts-node: proxy/transparent) or from the build (dist/proxy/transparent). */
function candidates(): string[] {
  const override = process.env.PILLION_ORIGINAL_DST_ADDON;
  if (override !== undefined) return [override];
  return [path.resolve(__dirname, '..', '..', BUILT), path.resolve(__dirname, '..', '..', '..', BUILT)];
}

export function loadOriginalDstAddon(): { addon: OriginalDstAddon | undefined; reason: string | undefined } {
  if (process.platform !== 'linux') {
    return { addon: undefined, reason: `SO_ORIGINAL_DST needs Linux (this is ${process.platform})` };
  }
  const file = candidates().find((f) => fs.existsSync(f));
  if (!file) {
    return { addon: undefined, reason: 'SO_ORIGINAL_DST addon not built (npm install could not compile proxy/transparent/native)' };
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const mod = require(file) as Partial<OriginalDstAddon>;
    if (typeof mod.getOriginalDst !== 'function') return { addon: undefined, reason: `${file} does not export getOriginalDst` };
    return { addon: mod as OriginalDstAddon, reason: undefined };
  } catch (err) {
    return { addon: undefined, reason: `SO_ORIGINAL_DST addon failed to load: ${(err as Error).message.split('\n')[0]}` };
  }
}
