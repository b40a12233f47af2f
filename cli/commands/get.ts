// `pillion get`: not built yet.
import { CliError } from '../errors';

export async function run(_argv: string[]): Promise<number> {
  throw new CliError('pillion get: not implemented yet', 2);
}
