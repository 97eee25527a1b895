// Issue 10, suspected: the symlink guard stopped at the first symlink that
// stays inside the target, so `a -> b` with `b/c -> outside` let `a/c/x` through.
// On a real tree; in-target links keep working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guardChanges, splitChanges, type AncestorKind } from '../../src/agent/symlink-guard.js';

test('a chain of links is followed to its end: one that leaves the target on the way is refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inosync-guard-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const target = join(dir, 'target');
  const outside = join(dir, 'outside');
  mkdirSync(outside);
  mkdirSync(join(target, 'b', 'd'), { recursive: true });
  mkdirSync(join(target, 'real', 'sub'), { recursive: true });
  symlinkSync('b', join(target, 'a')); // inside
  symlinkSync(outside, join(target, 'b', 'c')); // out, reached through a
  symlinkSync('../b/c', join(target, 'real', 'sub', 'up')); // relative, out through a chain
  symlinkSync('a', join(target, 'l1')); // l1 -> a -> b: inside all the way
  symlinkSync('l1', join(target, 'l2'));
  const g = guardChanges(target, {
    name: 'www',
    full: false,
    files: ['a/c/x', 'a/d/x', 'l2/d/x', 'l2/c/passwd', 'real/sub/up/x', 'real/sub/f', 'b/c'],
    dirs: ['a/c/deep/dir'],
    trees: ['l1/c/t', 'l1/d'],
  });
  assert.deepEqual(g.refused.map((r) => `${r.entry}<${r.link}`), ['a/c/x', 'l2/c/passwd', 'real/sub/up/x', 'a/c/deep/dir', 'l1/c/t'].map((e) => `${e}<${e.split('/').slice(0, e.startsWith('real') ? 3 : 2).join('/')}`));
  assert.deepEqual(g.safe.files, ['a/d/x', 'l2/d/x', 'real/sub/f', 'b/c'], 'in-target links, and a link itself as an entry, are left to rsync');
  assert.deepEqual(g.safe.trees, ['l1/d']);
});

test('pure: past a link that stays inside, the ancestors below it are still asked', () => {
  const kinds: Record<string, AncestorKind> = { a: 'symlink-inside', 'a/c': 'symlink-outside', 'a/d': 'dir', i: 'symlink-inside', 'i/j': 'symlink-inside' };
  const out = splitChanges({ name: 'www', full: false, files: ['a/c/x', 'a/d/x', 'i/j/k/x'], dirs: [], trees: [] }, (rel) => kinds[rel] ?? 'dir');
  assert.deepEqual(out.refused.map((r) => `${r.entry}<${r.link}`), ['a/c/x<a/c']);
  assert.deepEqual(out.safe.files, ['a/d/x', 'i/j/k/x']);
});
