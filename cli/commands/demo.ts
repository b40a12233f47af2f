// `pillion demo`: not built yet.
import { CliError } from '../errors';

export async function run(_argv: string[]): Promise<number> {
  throw new CliError('pillion demo: not implemented yet', 2);
}
