// `pillion rollback`: not built yet.
import { CliError } from '../errors';

export async function run(_argv: string[]): Promise<number> {
  throw new CliError('pillion rollback: not implemented yet', 2);
}
