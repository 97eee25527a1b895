// The folder tells which side of the wire a file is on, so imports between
// folders follow rules (docs/ARCHITECTURE.md, "What may import what"). This
// test reads every source file's imports and fails on one that breaks them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Top-level homes, by the path prefix that names them. */
const HOMES = ['src/protocol', 'src/rsync', 'src/common', 'src/config', 'src/master', 'src/agent', 'src/cli', 'harness', 'scripts', 'test'] as const;
type Home = (typeof HOMES)[number];

/** What each home may import besides itself. */
export const ALLOWED: Record<Home, readonly Home[]> = {
  'src/protocol': [],
  'src/rsync': ['src/protocol'],
  'src/common': ['src/protocol'],
  'src/config': ['src/protocol', 'src/rsync', 'src/common'],
  'src/master': ['src/protocol', 'src/rsync', 'src/common', 'src/config'],
  'src/agent': ['src/protocol', 'src/rsync', 'src/common', 'src/config'],
  'src/cli': ['src/protocol', 'src/rsync', 'src/common', 'src/config', 'src/master', 'src/agent'],
  harness: ['src/protocol', 'src/rsync', 'src/common', 'src/config', 'src/master', 'src/agent', 'src/cli'],
  scripts: ['src/protocol', 'src/rsync', 'src/common', 'src/config', 'src/master', 'src/agent', 'src/cli', 'harness'],
  test: ['src/protocol', 'src/rsync', 'src/common', 'src/config', 'src/master', 'src/agent', 'src/cli', 'harness'],
};

function homeOf(file: string): Home | null {
  return HOMES.find((h) => file === h || file.startsWith(h + '/')) ?? null;
}

/** Relative specifiers of `import ... from`, `export ... from` and `import('...')` in a source text. */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g;
  for (const m of source.matchAll(re)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (spec?.startsWith('.')) out.push(spec);
  }
  return out;
}

/** The broken rules of one file: `file` and its imports are repository-relative, posix. */
export function violations(file: string, specs: readonly string[]): string[] {
  const from = homeOf(file);
  if (from === null) return [];
  const out: string[] = [];
  for (const spec of specs) {
    const target = posix.normalize(posix.join(posix.dirname(file), spec));
    const to = homeOf(target);
    if (to === from) continue;
    if (to === null) out.push(`${file} imports ${spec}, which is outside every known folder`);
    else if (!ALLOWED[from].includes(to)) out.push(`${file} imports ${spec}: ${from} may not import from ${to}`);
  }
  return out;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root (no package.json above this test)');
    dir = up;
  }
  return dir;
}

function sourceFiles(root: string, dir: string): string[] {
  const abs = join(root, dir);
  if (!existsSync(abs)) return [];
  const out: string[] = [];
  for (const e of readdirSync(abs, { withFileTypes: true })) {
    const rel = posix.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'fixtures' && e.name !== 'node_modules') out.push(...sourceFiles(root, rel));
    } else if (/\.(ts|mts|mjs|js)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(rel);
  }
  return out;
}

test('the rules catch what they must (table)', () => {
  const cases: [file: string, spec: string, broken: boolean][] = [
    ['src/protocol/codec.ts', './messages.js', false],
    ['src/protocol/codec.ts', '../master/master.js', true],
    ['src/protocol/codec.ts', '../common/log.js', true],
    ['src/rsync/filter.ts', '../protocol/relpath.js', false],
    ['src/rsync/filter.ts', '../agent/applier.js', true],
    ['src/master/master.ts', '../agent/agent.js', true],
    ['src/agent/agent.ts', '../master/session.js', true],
    ['src/agent/agent.ts', '../rsync/filter.js', false],
    ['src/master/watcher/inotify.ts', '../root-health.js', false],
    ['src/master/watcher/inotify.ts', '../../protocol/limits.js', false],
    ['src/cli/master.ts', '../master/master.js', false],
    ['src/master/master.ts', '../cli/master.js', true],
    ['src/master/master.ts', '../../harness/cluster.js', true],
    ['scripts/bench.ts', '../harness/cluster.js', false],
    ['scripts/bench.ts', '../test/helpers/cluster.js', true],
    ['harness/cluster.ts', '../test/sync.test.js', true],
    ['harness/cluster.ts', '../scripts/soak.js', true],
    ['test/sync.test.ts', '../harness/cluster.js', false],
    ['test/unit/x.test.ts', '../../src/protocol/codec.js', false],
    ['test/sync.test.ts', '../scripts/soak.js', true],
    ['src/common/log.ts', '../../node_modules/x.js', true],
  ];
  for (const [file, spec, broken] of cases) {
    assert.equal(violations(file, [spec]).length > 0, broken, `${file} -> ${spec}`);
  }
});

test('imports are found in every form the code uses', () => {
  const src = [
    "import { a } from './a.js';",
    "import type { B } from '../b.js';",
    "export { c } from './c.js';",
    "export type { D } from './d.js';",
    'import {\n  e,\n  f,\n} from "./ef.js";',
    "const g = await import('./g.js');",
    "import './side-effect.js';",
    "import { readFileSync } from 'node:fs';",
    "import WebSocket from 'ws';",
  ].join('\n');
  assert.deepEqual(importsOf(src), ['./a.js', '../b.js', './c.js', './d.js', './ef.js', './g.js', './side-effect.js']);
});

test('every source file keeps to its folder\'s imports', () => {
  const root = repoRoot();
  const files = ['src', 'harness', 'scripts', 'test'].flatMap((d) => sourceFiles(root, d));
  assert.ok(files.some((f) => f.startsWith('src/protocol/')), `no sources found under ${root}`);
  const broken = files.flatMap((f) => violations(f, importsOf(readFileSync(join(root, f), 'utf8'))));
  assert.deepEqual(broken, [], `imports that break docs/ARCHITECTURE.md's rules:\n${broken.join('\n')}`);
  const unplaced = files.filter((f) => f.startsWith('src/') && homeOf(f) === null);
  assert.deepEqual(unplaced, [], `source files outside every known folder: ${unplaced.map((f) => relative(root, join(root, f))).join(', ')}`);
});
