#!/usr/bin/env node
'use strict';
// Runs the tap suite and ends with one plain line, `N passed, N failed, N skipped`, counted
// from the TAP stream itself, so that a run that executed no test cannot look green.
const { spawn } = require('node:child_process');
const path = require('node:path');

const root = path.join(__dirname, '..');
const fs = require('node:fs');
// Only test files: helpers, fixtures and this runner are not tests.
const files = process.argv.slice(2);
const all = fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join('test', f));
const tap = path.join(root, 'node_modules', '.bin', 'tap');
const child = spawn(tap, ['--reporter=tap', ...(files.length ? files : all)], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
});

let passed = 0, failed = 0, skipped = 0, todo = 0, buffer = '';
// Count leaf test points: a line `ok N - name` (at any depth) that is not a subtest summary.
// tap marks subtest summaries with a trailing `# time=`; leaf points never carry it.
function count(line) {
  const m = /^\s*(not ok|ok) \d+(?: - ([^#]*))?(?:\s*#\s*(.*))?$/.exec(line);
  if (!m) return;
  const directive = (m[3] || '').trim();
  if (/^time=/.test(directive)) return; // a subtest or file summary
  if (/^SKIP/i.test(directive)) { skipped++; return; }
  if (/^TODO/i.test(directive)) { todo++; return; }
  if (m[1] === 'ok') passed++; else failed++;
}
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  buffer += chunk.toString('utf8');
  let nl;
  while ((nl = buffer.indexOf('\n')) >= 0) {
    count(buffer.slice(0, nl));
    buffer = buffer.slice(nl + 1);
  }
});
child.on('close', (code) => {
  if (buffer) count(buffer);
  process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  process.exit(code !== 0 || failed > 0 || passed === 0 ? 1 : 0);
});
