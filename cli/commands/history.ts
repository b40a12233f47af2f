// `pillion history`: the stored config versions, newest first.
import { adminRequest, resolveTarget } from '../../control/admin-client';
import { TARGET_FLAGS, withAdminErrors } from '../../control/admin-client/cli';
import { formatTable } from '../../control/admin-client/table';
import type { VersionSummary } from '../../control';
import { parseFlags } from '../args';
import { CliError } from '../errors';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags('history', argv, {
    ...TARGET_FLAGS, json: { type: 'boolean' }, output: { type: 'string', short: 'o' }, limit: { type: 'string' },
  });
  if (values.output !== undefined && values.output !== 'json') throw new CliError('pillion history: -o must be json', 2);
  const limit = values.limit ?? '1000';
  if (!/^[1-9]\d*$/.test(limit)) throw new CliError(`pillion history: --limit must be a positive integer (got ${JSON.stringify(limit)})`, 2);
  const answer = await withAdminErrors('history', async () =>
    adminRequest<{ version: number; versions: VersionSummary[] }>(resolveTarget(values), 'GET', `/v1/history?limit=${limit}`));
  if (values.json || values.output === 'json') {
    process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    return 0;
  }
  if (answer.versions.length === 0) {
    process.stdout.write('no versions yet\n');
    return 0;
  }
  const rows = answer.versions.map((v) => [
    `${v.version}${v.version === answer.version ? '*' : ''}`, v.createdAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), String(v.policies), v.detail,
  ]);
  process.stdout.write(formatTable(['VERSION', 'CREATED', 'POLICIES', 'CHANGE'], rows));
  return 0;
}
