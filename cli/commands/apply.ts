// `pillion apply -f FILE`: validate locally with the proxy's decoder, then send the documents;
// the control server validates again and stores a new version.
import * as fs from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { adminRequest, resolveTarget } from '../../control/admin-client';
import { TARGET_FLAGS, withAdminErrors } from '../../control/admin-client/cli';
import { ConfigError, decodePolicyObjects, decodePolicyText } from '../../proxy/config';
import { parseFlags } from '../args';
import { CliError } from '../errors';

interface ApplyAnswer { version: number; changed: boolean; created: string[]; configured: string[]; unchanged: string[] }

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags('apply', argv, {
    ...TARGET_FLAGS,
    filename: { type: 'string', short: 'f', multiple: true },
    output: { type: 'string', short: 'o' },
  });
  const files = values.filename ?? [];
  if (files.length === 0) throw new CliError('pillion apply: -f FILE is required (use -f - for stdin)', 2);
  if (values.output !== undefined && values.output !== 'json') throw new CliError('pillion apply: -o must be json', 2);

  const documents: unknown[] = [];
  const labels: string[] = [];
  for (const file of files) {
    const text = readInput(file);
    const shown = file === '-' ? 'stdin' : file;
    try {
      decodePolicyText(text); // the same rules and messages as the proxy and the control server
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(`pillion apply: ${shown} is invalid: ${err.issues.join('; ')}`, 1);
      throw err;
    }
    parseAllDocuments(text).forEach((doc, i) => {
      const value: unknown = doc.toJS({ maxAliasCount: 100 });
      const label = files.length > 1 ? `${shown} document ${i + 1}` : `document ${i + 1}`;
      if (value === null || value === undefined) return;
      if (Array.isArray(value)) value.forEach((v, j) => { documents.push(v); labels.push(`${label}[${j}]`); });
      else { documents.push(value); labels.push(label); }
    });
  }
  if (documents.length === 0) throw new CliError(`pillion apply: ${files.join(', ')} holds no documents`, 1);
  if (files.length > 1) {
    try {
      decodePolicyObjects(documents, labels);
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(`pillion apply: the files are invalid together: ${err.issues.join('; ')}`, 1);
      throw err;
    }
  }

  const answer = await withAdminErrors('apply', async () => {
    const target = resolveTarget(values);
    return adminRequest<ApplyAnswer>(target, 'POST', '/v1/apply', { documents, labels });
  });
  if (values.output === 'json') {
    process.stdout.write(`${JSON.stringify(answer, null, 2)}\n`);
    return 0;
  }
  const lines = [
    ...answer.created.map((n) => `trafficpolicy/${n} created`),
    ...answer.configured.map((n) => `trafficpolicy/${n} configured`),
    ...answer.unchanged.map((n) => `trafficpolicy/${n} unchanged`),
    answer.changed ? `version ${answer.version}` : `version ${answer.version} (nothing changed)`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

function readInput(file: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`pillion apply: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
  }
}
