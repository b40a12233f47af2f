// `pillion delete NAME`: a new version without that TrafficPolicy.
import { adminRequest, resolveTarget } from '../../control/admin-client';
import { TARGET_FLAGS, withAdminErrors } from '../../control/admin-client/cli';
import { parseFlags } from '../args';
import { CliError } from '../errors';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('delete', argv, { ...TARGET_FLAGS }, true);
  if (positionals.length !== 1) throw new CliError('pillion delete: exactly one NAME is required', 2);
  const name = positionals[0]!.replace(/^(trafficpolicy|tp)\//i, '');
  const answer = await withAdminErrors('delete', async () =>
    adminRequest<{ version: number }>(resolveTarget(values), 'DELETE', `/v1/policies/${encodeURIComponent(name)}`));
  process.stdout.write(`trafficpolicy/${name} deleted\nversion ${answer.version}\n`);
  return 0;
}
