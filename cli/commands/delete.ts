// `pillion delete`: not built yet.
import { CliError } from '../errors';

export async function run(_argv: string[]): Promise<number> {
  throw new CliError('pillion delete: not implemented yet', 2);
}
