// init-iptables without touching any real rules: the generated ruleset, parsing of what
// `iptables -S` lists, the install/cleanup transactions (fake runner) and the CLI's errors.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  chainRules, cleanupRuleset, DEFAULT_INTERCEPT, installRules, installRuleset, IptablesError, ownState,
  parsePortList, RunResult, Runner, cleanupRules,
} from '../deploy/iptables';

const ROOT = path.join(__dirname, '..');
const BIN = path.join(ROOT, 'bin', 'pillion.js');

function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; asUid?: number } = {}) {
  const argv = opts.asUid === undefined
    ? [process.execPath, BIN, 'init-iptables', ...args]
    // `env -i`: tap's process hooks add NODE_OPTIONS that write coverage files, which an
    // unprivileged user cannot; the child must start clean.
    : ['setpriv', `--reuid=${opts.asUid}`, `--regid=${opts.asUid}`, '--clear-groups', 'env', '-i', `PATH=${process.env.PATH}`, process.execPath, BIN, 'init-iptables', ...args];
  const env = opts.env ?? { PATH: process.env.PATH };
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env, timeout: 20_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

t.test('the ruleset: own chains, redirects to 15006/15001, UID and loopback exclusions, proxy ports', async (t) => {
  const text = installRuleset({ ...DEFAULT_INTERCEPT, skipInboundPorts: ['22'], skipOutboundPorts: ['5432', '6000:6010'] });
  const lines = text.trim().split('\n');
  t.equal(lines[0], '*nat');
  t.equal(lines[lines.length - 1], 'COMMIT');
  for (const c of ['PILLION_INBOUND', 'PILLION_IN_REDIRECT', 'PILLION_OUTPUT', 'PILLION_REDIRECT']) t.ok(lines.includes(`:${c} - [0:0]`), `declares ${c}`);
  t.ok(lines.includes('-A PILLION_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'));
  t.ok(lines.includes('-A PILLION_REDIRECT -p tcp -j REDIRECT --to-ports 15001'));
  t.ok(lines.includes('-A PREROUTING -p tcp -j PILLION_INBOUND'));
  t.ok(lines.includes('-A OUTPUT -p tcp -j PILLION_OUTPUT'));
  t.ok(lines.includes('-A PILLION_OUTPUT -m owner --uid-owner 1337 -j RETURN'), 'proxy UID not redirected');
  t.ok(lines.includes('-A PILLION_OUTPUT -d 127.0.0.0/8 -j RETURN'), 'loopback not redirected');
  t.ok(lines.includes('-A PILLION_INBOUND -p tcp -m tcp --dport 22 -j RETURN'), 'skipped inbound port');
  t.ok(lines.includes('-A PILLION_OUTPUT -p tcp -m tcp --dport 6000:6010 -j RETURN'), 'skipped outbound range');
  for (const p of [15000, 15001, 15006]) {
    t.ok(lines.includes(`-A PILLION_INBOUND -p tcp -m tcp --dport ${p} -j RETURN`), `inbound never redirects proxy port ${p}`);
    t.ok(lines.includes(`-A PILLION_OUTPUT -p tcp -m tcp --dport ${p} -j RETURN`), `outbound never redirects proxy port ${p}`);
  }
  // Every exclusion must come before the catch-all jump, or it excludes nothing.
  const rules = chainRules(DEFAULT_INTERCEPT);
  const lastOut = rules.lastIndexOf('-A PILLION_OUTPUT -p tcp -j PILLION_REDIRECT');
  t.equal(lastOut, rules.length - 1);
  t.equal(rules.filter((r) => r.startsWith('-A PILLION_INBOUND')).pop(), '-A PILLION_INBOUND -p tcp -j PILLION_IN_REDIRECT');
  t.equal(rules.filter((r) => r.includes('REDIRECT --to-ports')).length, 2);
  // Rules touch only our chains: the two jumps are the only lines on built-in chains.
  t.equal(lines.filter((l) => /^-A (PREROUTING|OUTPUT|INPUT|POSTROUTING) /.test(l)).length, 2);
});

t.test('custom ports and UID', async (t) => {
  const text = installRuleset({ ...DEFAULT_INTERCEPT, proxyUid: 2000, inboundPort: 16006, outboundPort: 16001 });
  t.match(text, /REDIRECT --to-ports 16006/);
  t.match(text, /REDIRECT --to-ports 16001/);
  t.match(text, /--uid-owner 2000 -j RETURN/);
  t.notMatch(text, /1337|15006|15001\b/);
});

t.test('port lists', async (t) => {
  t.same(parsePortList('22,8000-8100, 9000:9001'), ['22', '8000:8100', '9000:9001']);
  t.same(parsePortList(''), []);
  for (const bad of ['x', '0', '70000', '10-5', '22,,23', '1:2:3']) t.equal(parsePortList(bad), undefined, bad);
});

const LISTING = `-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N KUBE-SERVICES
-N PILLION_INBOUND
-N PILLION_OUTPUT
-N PILLION_OTHER
-A PREROUTING -m comment --comment "kube" -j KUBE-SERVICES
-A PREROUTING -p tcp -j PILLION_INBOUND
-A OUTPUT -p tcp -j PILLION_OUTPUT
-A OUTPUT -j PILLION_OTHER
-A PILLION_INBOUND -p tcp -j RETURN
`;

t.test('cleanup removes our jumps and chains, nothing else', async (t) => {
  t.same(ownState(LISTING), {
    jumps: ['-A PREROUTING -p tcp -j PILLION_INBOUND', '-A OUTPUT -p tcp -j PILLION_OUTPUT'],
    chains: ['PILLION_INBOUND', 'PILLION_OUTPUT'],
  });
  const text = cleanupRuleset(LISTING)!;
  t.same(text.trim().split('\n'), [
    '*nat',
    '-D PREROUTING -p tcp -j PILLION_INBOUND',
    '-D OUTPUT -p tcp -j PILLION_OUTPUT',
    '-F PILLION_INBOUND',
    '-F PILLION_OUTPUT',
    '-X PILLION_INBOUND',
    '-X PILLION_OUTPUT',
    'COMMIT',
  ]);
  t.notMatch(text, /KUBE|PILLION_OTHER/, 'a chain that merely shares our prefix is not ours');
  t.equal(cleanupRuleset('-P OUTPUT ACCEPT\n'), undefined, 'nothing to remove');
});

function fakeRunner(listing: string): { run: Runner; calls: { cmd: string; args: readonly string[]; input?: string }[] } {
  const calls: { cmd: string; args: readonly string[]; input?: string }[] = [];
  const run: Runner = (cmd, args, input): RunResult => {
    calls.push({ cmd, args, input });
    if (cmd === 'iptables') return { status: 0, stdout: listing, stderr: '' };
    return { status: 0, stdout: '', stderr: '' };
  };
  return { run, calls };
}

t.test('install is one iptables-restore --noflush; a rerun replaces the jumps instead of adding more', async (t) => {
  const first = fakeRunner('-P OUTPUT ACCEPT\n');
  t.equal(installRules(DEFAULT_INTERCEPT, { run: first.run, uid: 0 }).replacedJumps, 0);
  const restore = first.calls.find((c) => c.cmd === 'iptables-restore')!;
  t.ok(restore.args.includes('--noflush'), 'never flushes the table');
  t.notMatch(restore.input!, /^-D /m);

  const second = fakeRunner(LISTING);
  t.equal(installRules(DEFAULT_INTERCEPT, { run: second.run, uid: 0 }).replacedJumps, 2);
  const input = second.calls.find((c) => c.cmd === 'iptables-restore')!.input!;
  t.match(input, /^-D PREROUTING -p tcp -j PILLION_INBOUND$/m);
  t.ok(input.indexOf('-D PREROUTING') < input.indexOf('-A PREROUTING'), 'deleted before re-added');
  t.equal((input.match(/^-A PREROUTING/gm) ?? []).length, 1);
});

function failure(fn: () => unknown): { code: string; message: string } | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof IptablesError) return { code: err.code, message: err.message };
    throw err;
  }
  return undefined;
}

t.test('typed errors: not root, no iptables, rejected ruleset', async (t) => {
  const never: Runner = () => { throw new Error('must not run'); };
  t.equal(failure(() => installRules(DEFAULT_INTERCEPT, { run: never, uid: 1000 }))?.code, 'not-root');
  t.equal(failure(() => cleanupRules({ run: never, uid: 1000 }))?.code, 'not-root');
  const enoent: Runner = () => ({ status: null, stdout: '', stderr: '', error: Object.assign(new Error('spawn iptables ENOENT'), { code: 'ENOENT' }) });
  const missing = failure(() => installRules(DEFAULT_INTERCEPT, { run: enoent, uid: 0 }));
  t.equal(missing?.code, 'no-iptables');
  t.match(missing?.message, /install iptables/);
  const rejecting: Runner = (cmd) => cmd === 'iptables'
    ? { status: 0, stdout: '', stderr: '' }
    : { status: 2, stdout: '', stderr: 'iptables-restore: line 7 failed\n' };
  const rejected = failure(() => installRules(DEFAULT_INTERCEPT, { run: rejecting, uid: 0 }));
  t.equal(rejected?.code, 'iptables-failed');
  t.match(rejected?.message, /line 7 failed/);
});

t.test('CLI: --dry-run prints the ruleset without root or iptables', async (t) => {
  const r = cli(['--dry-run', '--skip-inbound-ports', '22', '--proxy-uid', '1337'], { env: { PATH: '/nonexistent' } });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /^\*nat$/m);
  t.match(r.stdout, /-A PILLION_INBOUND -p tcp -m tcp --dport 22 -j RETURN/);
  t.match(r.stdout, /^COMMIT$/m);
});

t.test('CLI: one-line errors and non-zero exits', async (t) => {
  for (const args of [['--skip-outbound-ports', 'abc'], ['--inbound-port', '99999'], ['--proxy-uid', 'root'], ['--bogus']]) {
    const r = cli(args);
    t.equal(r.code, 2, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.match(r.stderr, /^pillion init-iptables: /);
  }
  const isRoot = process.geteuid?.() === 0;
  const hasSetpriv = spawnSync('setpriv', ['--version']).status === 0;
  t.test('without root', { skip: isRoot && hasSetpriv ? false : 'needs root and setpriv to run the CLI as an unprivileged user' }, async (t) => {
    const r = cli([], { asUid: 65534 });
    t.equal(r.code, 1);
    t.match(r.stderr, /^pillion init-iptables: must run as root/);
    t.equal(r.stderr.trim().split('\n').length, 1);
  });
  t.test('without iptables on PATH', { skip: isRoot ? false : 'the root check comes first; needs root to reach the iptables check' }, async (t) => {
    const r = cli([], { env: { PATH: '/nonexistent' } });
    t.equal(r.code, 1);
    t.match(r.stderr, /^pillion init-iptables: iptables .*not found on PATH; install iptables/);
    t.equal(r.stderr.trim().split('\n').length, 1);
  });
});
