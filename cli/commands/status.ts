// `pillion status`: one row per connected proxy, with the version it acknowledged and whether
// it is SYNCED, STALE or NACKED (and why).
import { adminRequest, resolveTarget } from '../../control/admin-client';
import { TARGET_FLAGS, withAdminErrors } from '../../control/admin-client/cli';
import { ago, formatTable } from '../../control/admin-client/table';
import type { Convergence, ProxyStatus } from '../../control';
import { parseFlags } from '../args';
import { CliError } from '../errors';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags('status', argv, { ...TARGET_FLAGS, json: { type: 'boolean' }, output: { type: 'string', short: 'o' } });
  if (values.output !== undefined && values.output !== 'json') throw new CliError('pillion status: -o must be json', 2);
  const answer = await withAdminErrors('status', async () =>
    adminRequest<{ version: number; proxies: ProxyStatus[]; convergence: Convergence | null }>(resolveTarget(values), 'GET', '/v1/status'));
  if (values.json || values.output === 'json') {
    process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    return 0;
  }
  process.stdout.write(`control version ${answer.version}, ${answer.proxies.length} ${answer.proxies.length === 1 ? 'proxy' : 'proxies'} connected\n`);
  if (answer.proxies.length === 0) return 0;
  const rows = answer.proxies.map((p) => [
    p.proxyId, p.service, p.ackedVersion === undefined ? '-' : String(p.ackedVersion), p.state, ago(p.lastSeen),
    p.state === 'NACKED' ? `version ${p.sentVersion}: ${p.reason ?? ''}` : '',
  ]);
  process.stdout.write(formatTable(['PROXY', 'SERVICE', 'VERSION', 'STATE', 'LAST SEEN', 'REASON'], rows));
  return 0;
}
