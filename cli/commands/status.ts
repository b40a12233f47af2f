// `pillion status`: not built yet.
import { CliError } from '../errors';

export async function run(_argv: string[]): Promise<number> {
  throw new CliError('pillion status: not implemented yet', 2);
}
