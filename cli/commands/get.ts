// `pillion get [NAME]`: the current TrafficPolicy resources, as a table or as YAML/JSON.
import { adminRequest, resolveTarget } from '../../control/admin-client';
import { TARGET_FLAGS, withAdminErrors } from '../../control/admin-client/cli';
import { documentsYaml, outputFormat, policyTable } from '../../control/admin-client/output';
import { parseFlags } from '../args';
import { CliError } from '../errors';

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('get', argv, {
    ...TARGET_FLAGS,
    output: { type: 'string', short: 'o' },
    json: { type: 'boolean' },
  }, true);
  const format = outputFormat(values.output, values.json);
  if (!format) throw new CliError('pillion get: -o must be yaml or json', 2);
  if (positionals.length > 1) throw new CliError('pillion get: at most one NAME', 2);
  const name = positionals[0];
  // `pillion get trafficpolicy/x` and `pillion get trafficpolicies` read like kubectl.
  const plain = name?.replace(/^(trafficpolicy|trafficpolicies|tp)\/?/i, '') || undefined;
  const answer = await withAdminErrors('get', async () => {
    const target = resolveTarget(values);
    if (plain) {
      const one = await adminRequest<{ version: number; item: unknown }>(target, 'GET', `/v1/policies/${encodeURIComponent(plain)}`);
      return { version: one.version, items: [one.item], single: true };
    }
    const all = await adminRequest<{ version: number; items: unknown[] }>(target, 'GET', '/v1/policies');
    return { ...all, single: false };
  });
  if (format === 'json') {
    const body = answer.single ? answer.items[0] : { version: answer.version, items: answer.items };
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  } else if (format === 'yaml') {
    process.stdout.write(documentsYaml(answer.items));
  } else if (answer.items.length === 0) {
    process.stdout.write(`no trafficpolicies (version ${answer.version})\n`);
  } else {
    process.stdout.write(policyTable(answer.items));
  }
  return 0;
}
