// `pillion rollback [--to N]`: a new version equal to N (default: the one before the current).
import { adminRequest, resolveTarget } from '../../control/admin-client';
import { TARGET_FLAGS, withAdminErrors } from '../../control/admin-client/cli';
import { parseFlags } from '../args';
import { CliError } from '../errors';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags('rollback', argv, { ...TARGET_FLAGS, to: { type: 'string' } });
  if (values.to !== undefined && !/^[1-9]\d*$/.test(values.to)) throw new CliError(`pillion rollback: --to must be a version number (got ${JSON.stringify(values.to)})`, 2);
  const body = values.to === undefined ? {} : { to: Number(values.to) };
  const answer = await withAdminErrors('rollback', async () =>
    adminRequest<{ version: number; to: number }>(resolveTarget(values), 'POST', '/v1/rollback', body));
  process.stdout.write(`rolled back to version ${answer.to}\nversion ${answer.version}\n`);
  return 0;
}
