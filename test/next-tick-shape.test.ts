// keepNextTickShape: after major GCs with nextTick's queue empty, V8 turns the definitions in
// nextTick's entry literal megamorphic, and every later nextTick builds its entry through the
// runtime. Run in child processes (V8 flags, and a fresh feedback state each), against the build.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

const MODULE = path.join(__dirname, '..', 'dist', 'proxy', 'runtime', 'next-tick-shape.js');

// Warm nextTick, run major GCs with its queue empty, warm it again, then print the state of
// its computed-key definitions (V8's %DebugPrint lists each feedback slot with its state).
const SCRIPT = `
if (process.argv[1] === 'keep') require(${JSON.stringify(MODULE)}).keepNextTickShape();
const ticks = (n, done) => { let i = 0; const step = () => (++i < n ? process.nextTick(step) : setImmediate(done)); process.nextTick(step); };
ticks(5000, () => {
  for (let i = 0; i < 4; i++) global.gc();
  setImmediate(() => {
    for (let i = 0; i < 4; i++) global.gc();
    ticks(5000, () => new Function('%DebugPrint(process.nextTick)')());
  });
});
`;

function definitionStates(t: Tap.Test, mode: string): Promise<string[]> {
  // Into a file: V8 prints with C stdio, which may lose its tail on a pipe at exit.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pillion-next-tick-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, `${mode}.txt`);
  const fd = fs.openSync(out, 'w');
  return new Promise((resolve, reject) => {
    // A plain node, as in production: without the test runner's loaders and coverage settings.
    // Single-threaded: a concurrent compile job in flight holds the hidden classes through the
    // GCs now and then (2 runs in 12 stayed monomorphic without the fix); on one thread, none.
    const child = spawn(process.execPath, ['--expose-gc', '--allow-natives-syntax', '--single-threaded', '-e', SCRIPT, mode], {
      env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', fd, 'inherit'], timeout: 30_000,
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      fs.closeSync(fd);
      if (code !== 0) return reject(new Error(`child exited with ${code}`));
      const text = fs.readFileSync(out, 'utf8');
      resolve([...text.matchAll(/DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1]!));
    });
  });
}

t.test('nextTick keeps its fast entry literal through major GCs once its shape is kept', async (t) => {
  const kept = await definitionStates(t, 'keep');
  t.equal(kept.length, 4, 'the four definitions of the entry literal are listed');
  t.same(kept, ['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC']);

  // The control: what the sidecar met without it. Should a later Node keep these monomorphic
  // on its own, this fails and keepNextTickShape can go.
  const plain = await definitionStates(t, 'plain');
  t.ok(plain.includes('MEGAMORPHIC'), `without it, V8 degrades the literal (states: ${plain.join(', ')})`);
});

t.test('keeping the entry enables no async hook (which would leave a V8 protector invalid)', async (t) => {
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ['--trace-protector-invalidation', '-e',
      `require(${JSON.stringify(MODULE)}).keepNextTickShape(); setImmediate(() => console.log('started'));`], {
      env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'inherit'], timeout: 30_000,
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => { text += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`child exited with ${code}`))));
  });
  t.match(out, /started/);
  t.notMatch(out, /PromiseHook/, 'no protector invalidated');
});
