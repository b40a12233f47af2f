// `pillion inject -f FILE`: the manifest with the sidecar added to every workload, on stdout,
// by the same rule the admission webhook applies in the cluster (deploy/inject/).
import { readFileSync } from 'node:fs';
import { parseFlags } from '../args';
import { CliError } from '../errors';
import { injectManifestText, InjectError, injectOptions } from '../../deploy/inject';

const USAGE = 'usage: pillion inject -f FILE [--image IMAGE] [--control URL] [--token-secret NAME]  (FILE may be - for stdin)';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags('inject', argv, {
    file: { type: 'string', short: 'f' },
    image: { type: 'string' },
    control: { type: 'string' },
    'token-secret': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const file = values.file;
  if (!file) throw new CliError(`pillion inject: -f FILE is required; ${USAGE}`, 2);
  if (values.control !== undefined && !/^https?:\/\/[^\s/]+/.test(values.control)) {
    throw new CliError(`pillion inject: --control must be an http(s) URL (got ${JSON.stringify(values.control)})`, 2);
  }

  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`pillion inject: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
  }
  const opts = injectOptions({ image: values.image, controlUrl: values.control, tokenSecret: values['token-secret'] });
  try {
    const result = injectManifestText(text, opts, file === '-' ? 'stdin' : file);
    process.stdout.write(result.text);
    for (const w of result.workloads) {
      const where = `${w.kind}/${w.name || '(unnamed)'}`;
      if (!w.decision.injected) process.stderr.write(`pillion inject: ${where} left unchanged: ${w.decision.reason}\n`);
      else for (const warning of w.decision.warnings) process.stderr.write(`pillion inject: warning: ${where}: ${warning}\n`);
    }
    return 0;
  } catch (err) {
    if (err instanceof InjectError) throw new CliError(`pillion inject: ${err.message}`, 1);
    throw err;
  }
}
