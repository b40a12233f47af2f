// The Node flags every sidecar is started with (proxy/runtime/node-flags.ts): Node must accept
// them in both forms we use (a container that fails to parse NODE_OPTIONS never starts), and
// they must actually keep V8's young generation small, which is what the memory goal rests on.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { SIDECAR_NODE_FLAGS, SIDECAR_NODE_OPTIONS } from '../proxy/runtime/node-flags';
import { proxyContainer } from '../deploy/inject/sidecar';
import { injectOptions } from '../deploy/inject/options';

// Keeps a ring of objects that each live through a few scavenges (what makes V8 grow the young
// generation), then reports how large the new space got (MB).
const PROBE = `
  const ring = new Array(50000);
  for (let i = 0; i < 2e6; i++) ring[i % 50000] = { i, a: [i, i] };
  const ns = require('v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  process.stdout.write(String(ns.space_size / 1048576));
`;

function newSpaceMb(args: readonly string[], env: NodeJS.ProcessEnv = {}): number {
  return Number(execFileSync(process.execPath, [...args, '-e', PROBE], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', ...env } }));
}

t.test('the flags cap the young generation, on the command line and as NODE_OPTIONS', async (t) => {
  const defaults = newSpaceMb([]);
  const flagged = newSpaceMb(SIDECAR_NODE_FLAGS);
  const viaEnv = newSpaceMb([], { NODE_OPTIONS: SIDECAR_NODE_OPTIONS });
  // Two 4 MB semi-spaces; Node's default grows to two of 16 MB here.
  t.ok(flagged <= 8, `with the flags: ${flagged} MB`);
  t.equal(viaEnv, flagged, 'NODE_OPTIONS has the same effect');
  t.ok(defaults >= flagged * 2, `without: ${defaults} MB`);
});

t.test('the injected proxy container runs with them', async (t) => {
  const c = proxyContainer(injectOptions(), { service: 'reviews', native: true });
  t.same(c.env?.find((e) => e.name === 'NODE_OPTIONS'), { name: 'NODE_OPTIONS', value: SIDECAR_NODE_OPTIONS });
});
