// Config files: invalid ones stop the proxy at start with a one-line reason; on SIGHUP an
// invalid file changes nothing (logged and counted) and a valid one is swapped in.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { admin, BIN, policy, policyFile, sleep, spawnProxy } from './helpers/proxy';

t.test('an invalid file at start: non-zero exit, one line naming document, path and reason', async (t) => {
  const file = policyFile(policy('ratings', 'service: ratings\nretries: { attempts: -1 }'));
  const r = spawnSync(process.execPath, [BIN, 'proxy', '--service', 'web', '--config', file, '--admin-port', '0', '--inbound-port', '0', '--outbound-port', '0'], { encoding: 'utf8', timeout: 10000 });
  t.not(r.status, 0);
  t.match(r.stderr, /ratings: spec\.retries\.attempts: must be an integer between 0 and 10 \(got -1\)/);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
});

t.test('bad flags and unreadable files: one-line errors', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['proxy'], /--service NAME is required/],
    [['proxy', '--service', 'web', '--bogus'], /Unknown option '--bogus'/],
    [['proxy', '--service', 'web', '--config', '/nonexistent/p.yaml'], /cannot read config \/nonexistent\/p\.yaml: ENOENT/],
    [['proxy', '--service', 'web', '--app', 'nope'], /--app must be HOST:PORT/],
    [['proxy', '--service', 'web', '--drain-timeout', '5 parsecs'], /--drain-timeout must be a duration/],
    [['nonsense'], /unknown command/],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 10000 });
    t.not(r.status, 0, args.join(' '));
    t.match(r.stderr, re, args.join(' '));
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
  }
});

t.test('SIGHUP: invalid file keeps the old config and counts the error; valid file swaps in', async (t) => {
  const file = policyFile(policy('ratings', 'service: ratings\ntimeout: 3s'));
  const p = await spawnProxy(['--service', 'web', '--config', file]);
  t.teardown(() => p.stop());
  const dump = async () => JSON.parse((await admin(p.ports.admin, '/config_dump')).body);
  t.match(await dump(), { version: 1, source: 'file', policies: [{ name: 'ratings', timeoutMs: 3000 }] });

  writeFileSync(file, policy('ratings', 'service: ratings\ntimeout: soon'));
  p.child.kill('SIGHUP');
  await sleep(300);
  t.match(await dump(), { version: 1, policies: [{ timeoutMs: 3000 }] }, 'old config stays');
  t.match(p.stderr(), /config reload refused.*ratings: spec\.timeout: must be a duration/);
  t.match((await admin(p.ports.admin, '/stats/prometheus')).body, /pillion_config_errors_total\{source="file"\} 1/);

  writeFileSync(file, policy('ratings', 'service: ratings\ntimeout: 7s') + '---\n' + policy('reviews', 'service: reviews'));
  p.child.kill('SIGHUP');
  await sleep(300);
  t.match(await dump(), { version: 2, policies: [{ name: 'ratings', timeoutMs: 7000 }, { name: 'reviews' }] }, 'new config swapped in');
  t.match((await admin(p.ports.admin, '/stats/prometheus')).body, /pillion_config_version 2/);
});
