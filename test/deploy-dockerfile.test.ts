// deploy/Dockerfile cannot be built here (no Docker engine), so its promises are checked by
// reading it: two stages, compilers only in the first, a slim runtime with iptables running as
// UID 1337, every COPY source present in the build context that .dockerignore leaves, and
// every package the compiled code requires at run time surviving `npm prune --omit=dev`.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtinModules } from 'node:module';

const root = path.join(__dirname, '..');
const dockerfile = fs.readFileSync(path.join(root, 'deploy', 'Dockerfile'), 'utf8');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

interface Instruction { op: string; args: string }
interface Stage { from: string; name: string | undefined; body: Instruction[] }

/** Instructions with line continuations joined and comments dropped, split into stages. */
function parseDockerfile(text: string): { args: Instruction[]; stages: Stage[] } {
  const logical: string[] = [];
  let cur = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) { cur += `${line.slice(0, -1)} `; continue; }
    cur += line;
    if (cur.trim()) logical.push(cur.trim());
    cur = '';
  }
  const args: Instruction[] = [];
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\w+)\s+([\s\S]*)$/.exec(l)!;
    const ins = { op: m[1]!.toUpperCase(), args: m[2]! };
    if (ins.op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ from: f[1]!, name: f[2], body: [] });
    } else if (stages.length === 0) args.push(ins);
    else stages.at(-1)!.body.push(ins);
  }
  return { args, stages };
}

const { args, stages } = parseDockerfile(dockerfile);
const [build, runtime] = stages;
const BUILD_TOOLS = /\b(gcc|g\+\+|make|build-essential|python3?|node-gyp|git|curl|wget|clang)\b/;

t.test('two stages: a build stage with compilers, a slim runtime without them', async (t) => {
  t.equal(stages.length, 2);
  t.equal(build!.name, 'build');
  t.equal(runtime!.name, 'runtime');
  const nodeVersion = /NODE_VERSION=(\d+)/.exec(args.map((a) => a.args).join(' '))?.[1];
  t.equal(nodeVersion, '20', 'Node 20, as the project');
  t.equal(build!.from, 'node:${NODE_VERSION}-bookworm', 'the full image has python3, make and g++');
  t.equal(runtime!.from, 'node:${NODE_VERSION}-bookworm-slim');
  const runs = runtime!.body.filter((i) => i.op === 'RUN').map((i) => i.args);
  const installs = runs.flatMap((r) => [...r.matchAll(/apt-get install ([^&]*)/g)].map((m) => m[1]!));
  t.same(installs.map((i) => i.replace(/-y|--no-install-recommends|-qq/g, '').trim()), ['iptables'], 'only iptables is installed');
  for (const r of runs) t.notMatch(r, BUILD_TOOLS, `no build tools in: ${r.slice(0, 60)}`);
  t.ok(runs.some((r) => r.includes('rm -rf /var/lib/apt/lists')), 'package lists dropped');
  t.notOk(runs.some((r) => /\bnpm (ci|install)\b/.test(r)), 'no npm install in the runtime stage');
  for (const c of runtime!.body.filter((i) => i.op === 'COPY')) t.match(c.args, /^--from=build /, `runtime copies only from the build stage: ${c.args}`);
});

t.test('runs as UID 1337 with pillion as the entrypoint', async (t) => {
  const users = runtime!.body.filter((i) => i.op === 'USER');
  t.equal(users.length, 1);
  t.match(users[0]!.args, /^1337(:1337)?$/);
  const last = runtime!.body.at(-1)!;
  t.not(last.op, 'USER', 'sanity');
  t.ok(runtime!.body.findIndex((i) => i.op === 'USER') > runtime!.body.findLastIndex((i) => i.op === 'RUN'), 'no RUN after USER: nothing escalates back to root');
  t.same(JSON.parse(runtime!.body.find((i) => i.op === 'ENTRYPOINT')!.args), ['pillion']);
  t.match(dockerfile, /ln -s \/app\/bin\/pillion\.js \/usr\/local\/bin\/pillion/);
  t.match(dockerfile, /useradd [^\n]*--uid 1337/);
});

t.test('the build stage builds and checks the native parts', async (t) => {
  const run = build!.body.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n');
  t.match(run, /npm ci\b/);
  t.match(run, /npm prune --omit=dev/);
  // The path the proxy loads the SO_ORIGINAL_DST addon from must be where the image puts it.
  const addonSrc = fs.readFileSync(path.join(root, 'proxy', 'transparent', 'addon.ts'), 'utf8');
  const parts = /const BUILT = path\.join\(([^)]*)\)/.exec(addonSrc)?.[1]?.split(',').map((s) => s.trim().replace(/^'|'$/g, ''));
  t.ok(parts, 'addon path found in proxy/transparent/addon.ts');
  const addonPath = parts!.join('/');
  t.match(run, new RegExp(`test -f ${addonPath.replace(/\./g, '\\.')}`), 'the build fails if the addon did not compile');
  t.ok(runtime!.body.some((i) => i.op === 'COPY' && i.args.includes(`/app/${addonPath} ./${addonPath}`)), 'the runtime has the addon where addon.ts looks');
  t.match(run, /test -f dist\/cli\/main\.js/);
});

// .dockerignore semantics for the patterns used: the last matching line wins, `!` re-includes,
// `*` matches within one path segment, `**/` any depth, and a directory pattern covers its tree.
function ignored(file: string, patterns: string[]): boolean {
  let result = false;
  for (const raw of patterns) {
    const neg = raw.startsWith('!');
    const pat = neg ? raw.slice(1) : raw;
    const re = new RegExp(`^${pat.split('/').map((seg) => (seg === '**' ? '(?:.*/)?' : `${seg.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}/`)).join('').replace(/\/$/, '')}(?:/.*)?$`.replace('(?:.*/)?/', '(?:.*/)?'));
    if (re.test(file)) result = !neg;
  }
  return result;
}

t.test('.dockerignore keeps the context small and holds what the build copies', async (t) => {
  const patterns = fs.readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const f of ['node_modules/yaml/package.json', 'dist/cli/main.js', '.git/config', 'test/inject-golden.test.ts', 'proxy/transparent/native/build/Release/original_dst.node',
    'deploy/kubernetes/tokens/admin.token', 'deploy/kubernetes/tls/tls.key', 'cli/foo.test.ts', 'bench/results/raw/x.json', 'README.md', '.tap/x']) {
    t.ok(ignored(f, patterns), `${f} stays out of the context`);
  }
  const copies = build!.body.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
  t.ok(copies.length >= 5);
  for (const c of copies) {
    const parts = c.args.split(/\s+/);
    for (const src of parts.slice(0, -1)) {
      t.ok(fs.existsSync(path.join(root, src)), `${src} exists`);
      const probe = fs.statSync(path.join(root, src)).isDirectory()
        ? fs.readdirSync(path.join(root, src)).find((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.test.ts'))
        : undefined;
      const sample = probe ? `${src}/${probe}` : src;
      t.notOk(ignored(sample, patterns), `${sample} is in the context`);
    }
  }
  // Everything the TypeScript build compiles is copied in (tsconfig include).
  const tsconfig = JSON.parse(fs.readFileSync(path.join(root, 'tsconfig.json'), 'utf8'));
  const copied = copies.flatMap((c) => c.args.split(/\s+/).slice(0, -1));
  for (const inc of tsconfig.include as string[]) t.ok(copied.includes(inc.split('/')[0]!), `${inc.split('/')[0]} (tsconfig include) is copied`);
});

t.test('everything the compiled code requires at run time is a production dependency', async (t) => {
  const dist = path.join(root, 'dist');
  if (!fs.existsSync(path.join(dist, 'cli', 'main.js'))) return t.skip('dist/ is not built (npm test builds it first)');
  const builtins = new Set(builtinModules);
  const required = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) {
        for (const m of fs.readFileSync(p, 'utf8').matchAll(/require\("([^".][^"]*)"\)/g)) {
          const spec = m[1]!;
          if (spec.startsWith('node:') || builtins.has(spec)) continue;
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
          required.set(name, path.relative(root, p));
        }
      }
    }
  };
  // `pillion bench` (dist/bench) is a development tool and not promised in the image.
  for (const d of ['cli', 'proxy', 'control', 'deploy']) if (fs.existsSync(path.join(dist, d))) walk(path.join(dist, d));
  t.ok(required.size >= 5, `found ${required.size} packages`);
  for (const [name, where] of required) t.ok(pkg.dependencies?.[name], `${name} (required by ${where}) is in dependencies, so npm prune --omit=dev keeps it`);
});
