// The `pillion` command: one file per subcommand under ./commands, loaded on demand so
// that `pillion get` does not pay for the proxy's dependencies.
import { CliError } from './errors';

export type Command = (argv: string[]) => Promise<number | void>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ run: Command }> }> = {
  proxy: { summary: 'run the sidecar proxy', load: () => import('./commands/proxy') },
  control: { summary: 'run the control server', load: () => import('./commands/control') },
  apply: { summary: 'create or update TrafficPolicy resources', load: () => import('./commands/apply') },
  get: { summary: 'show TrafficPolicy resources', load: () => import('./commands/get') },
  delete: { summary: 'delete a TrafficPolicy', load: () => import('./commands/delete') },
  status: { summary: 'one row per connected proxy', load: () => import('./commands/status') },
  history: { summary: 'config versions, newest first', load: () => import('./commands/history') },
  rollback: { summary: 'make an earlier version current again', load: () => import('./commands/rollback') },
  'init-iptables': { summary: 'install the pod\'s traffic redirection rules', load: () => import('./commands/init-iptables') },
  inject: { summary: 'print a manifest with the sidecar added', load: () => import('./commands/inject') },
  sandbox: { summary: 'local pods in network namespaces (root)', load: () => import('./commands/sandbox') },
  demo: { summary: 'run the demo mesh (what `npm start` runs)', load: () => import('./commands/demo') },
  bench: { summary: 'run the benchmarks (what `npm run bench` runs)', load: () => import('./commands/bench') },
};

function usage(): string {
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(14)} ${c.summary}`);
  return `usage: pillion <command> [flags]\n\ncommands:\n${rows.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    process.exitCode = name ? 0 : 2;
    return;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`pillion: unknown command ${JSON.stringify(name)}; run \`pillion --help\`\n`);
    process.exitCode = 2;
    return;
  }
  try {
    const { run } = await command.load();
    const code = await run(rest);
    if (typeof code === 'number') process.exitCode = code;
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`pillion ${name}: ${(err as Error)?.message ?? String(err)}\n`);
      process.exitCode = 1;
    }
  }
}
