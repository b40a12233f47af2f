// `pillion bench`: runs the benchmark suite (bench/) and writes bench/results/latest.{json,md,svg}.
import path from 'node:path';
import { CliError } from '../errors';
import { parseFlags, durationFlag } from '../args';

const USAGE = `usage: pillion bench [--quick] [--scenario a,b,...] [--rounds N] [--duration 6s] [--warmup 8s]
                     [--out DIR] [--no-install] [--no-convergence] [--no-side-by-side]
                     [--side-by-side-rounds N] [--list] [--render]
  --side-by-side-rounds: rounds of the side-by-side phase (default: --rounds); it is the
                     reading the bars are judged on, so more rounds there narrow it most
  --render: rewrite DIR/latest.md and latest.svg from DIR/latest.json without running anything`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags('bench', argv, {
    quick: { type: 'boolean' },
    scenario: { type: 'string' },
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    out: { type: 'string' },
    'no-install': { type: 'boolean' },
    'no-convergence': { type: 'boolean' },
    'no-side-by-side': { type: 'boolean' },
    'side-by-side-rounds': { type: 'string' },
    list: { type: 'boolean' },
    render: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // Loaded here so that `pillion --help` does not pay for the bench.
  const { runBench, renderResults, allScenarios, slowScenarios } = await import('../../bench');
  if (values.list) {
    for (const s of allScenarios) process.stdout.write(`${s.name.padEnd(24)} ${s.label}\n`);
    return 0;
  }
  const quick = values.quick === true;
  const known = allScenarios.map((s) => s.name);
  let scenarios = quick ? known.filter((n) => !slowScenarios.includes(n)) : known;
  if (values.scenario !== undefined && values.scenario !== 'all') {
    scenarios = values.scenario.split(',').map((s) => s.trim()).filter(Boolean);
    const unknown = scenarios.filter((s) => !known.includes(s));
    if (unknown.length || scenarios.length === 0) {
      throw new CliError(`pillion bench: unknown scenario ${JSON.stringify(unknown.join(','))}; known: ${known.join(', ')}`, 2);
    }
  }
  // More, shorter rounds rather than fewer long ones: on a shared machine, interleaving is
  // what cancels a neighbour's burst.
  const roundsFlag = (name: string, raw: string | undefined, fallback: number): number => {
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 50) {
      throw new CliError(`pillion bench: --${name} must be an integer 1-50 (got ${JSON.stringify(raw)})`, 2);
    }
    return Number(raw);
  };
  const rounds = roundsFlag('rounds', values.rounds, quick ? 1 : 5);
  const sideBySideRounds = roundsFlag('side-by-side-rounds', values['side-by-side-rounds'], rounds);
  const durationMs = durationFlag('bench', 'duration', values.duration, quick ? 3000 : 6000);
  // Each scenario starts fresh every round. Measured here, a Node proxy's CPU per request
  // settles only after 6-8 s of full load (V8 is still optimising before that), and the more
  // JavaScript a proxy runs the longer it takes: a 2 s warm-up measured start-up, not the
  // steady state a sidecar lives in.
  const warmupMs = durationFlag('bench', 'warmup', values.warmup, quick ? 1000 : 8000);
  // wrk counts whole seconds.
  const seconds = Math.max(1, Math.round(durationMs / 1000));
  const warmupSeconds = Math.round(warmupMs / 1000);

  const root = path.resolve(__dirname, '..', '..', '..');
  if (values.render) {
    const dir = path.resolve(values.out ?? path.join(root, 'bench', 'results'));
    renderResults(dir);
    process.stdout.write(`${path.join(dir, 'latest.md')}\n`);
    return 0;
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const outDir = path.resolve(values.out ?? path.join(root, 'bench', 'results', ...(quick ? ['raw', 'quick'] : [])));
  // With --out, scratch goes there too, so a run elsewhere (the tests) leaves nothing in the checkout.
  const rawDir = values.out !== undefined
    ? path.join(outDir, 'raw', stamp)
    : path.join(root, 'bench', 'results', 'raw', `${stamp}${quick ? '-quick' : ''}`);
  const convergence = values['no-convergence'] ? [] : quick
    ? [{ proxies: 100, applies: 5 }]
    : [{ proxies: 100, applies: 20 }, { proxies: 1000, applies: 20 }];

  const results = await runBench({
    quick, scenarios, rounds, throughputSeconds: seconds, fixedRateSeconds: seconds, warmupSeconds,
    outDir, rawDir, install: !values['no-install'], convergence, sideBySide: !values['no-side-by-side'], sideBySideRounds,
    command: ['pillion', 'bench', ...argv].join(' '), root,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write('\n');
  for (const b of results.bars) {
    const met = b.pass === undefined ? '' : b.pass ? '  [met]' : '  [NOT met]';
    process.stdout.write(`issue ${b.issue}: ${b.what}: ${b.display || 'not measured'} (goal ${b.goal})${met}\n`);
  }
  process.stdout.write(`\n${path.join(outDir, 'latest.md')}\n`);
  const failed = results.scenarios.filter((s) => s.status === 'failed');
  for (const f of failed) process.stderr.write(`pillion bench: ${f.name} failed: ${f.reason}\n`);
  return failed.length ? 1 : 0;
}
