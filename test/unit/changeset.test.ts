import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeSet } from '../../src/protocol/changeset.js';
import type { ChangeKind, PathChanges } from '../../src/protocol/changes.js';
import { isWithin } from '../../src/protocol/relpath.js';
import { Rng } from '../../harness/rng.js';

const BIG = 1_000_000;

function changes(cs: ChangeSet): Omit<PathChanges, 'name'> {
  const { name: _name, ...rest } = cs.toChanges('p');
  return rest;
}

function set(limit: number, adds: Array<[string, ChangeKind]>): ChangeSet {
  const cs = new ChangeSet(limit);
  for (const [rel, kind] of adds) cs.add(rel, kind);
  return cs;
}

const empty = { full: false, files: [], dirs: [], trees: [] };
const full = { full: true, files: [], dirs: [], trees: [] };

/** Canonical form: sorted, disjoint, no entry covered by a tree, no file with entries below. */
function assertCanonical(c: PathChanges): void {
  if (c.full) {
    assert.deepEqual([c.files, c.dirs, c.trees], [[], [], []]);
    return;
  }
  for (const list of [c.files, c.dirs, c.trees]) assert.deepEqual(list, [...list].sort());
  const all = [...c.files, ...c.dirs, ...c.trees];
  assert.equal(new Set(all).size, all.length, 'a path in two lists');
  for (const t of c.trees) for (const p of all) if (p !== t) assert.ok(!isWithin(p, t), `${p} is covered by tree ${t}`);
  for (const f of c.files) for (const p of all) if (p !== f) assert.ok(!isWithin(p, f), `${p} is below file ${f}`);
}

// The rules, written the slow and obvious way (no collapse), to check the trie against.
class Model {
  full = false;
  readonly entries = new Map<string, ChangeKind>();
  add(rel: string, kind: ChangeKind): void {
    if (this.full) return;
    if (rel === '') {
      this.full = true;
      this.entries.clear();
      return;
    }
    const segs = rel.split('/');
    for (let i = 1; i < segs.length; i++) {
      const a = segs.slice(0, i).join('/');
      const k = this.entries.get(a);
      if (k === 'tree') return;
      if (k === 'file') return this.tree(a);
    }
    const had = this.entries.get(rel);
    if (had === 'tree') return;
    const below = [...this.entries.keys()].some((p) => p !== rel && isWithin(p, rel));
    if (kind === 'tree' || (kind === 'file' && (had === 'dir' || below)) || (kind === 'dir' && had === 'file')) this.tree(rel);
    else if (!had) this.entries.set(rel, kind);
  }
  private tree(rel: string): void {
    for (const p of [...this.entries.keys()]) if (isWithin(p, rel)) this.entries.delete(p);
    this.entries.set(rel, 'tree');
  }
  changes(): Omit<PathChanges, 'name'> {
    const pick = (k: ChangeKind) => [...this.entries].filter(([, v]) => v === k).map(([p]) => p).sort();
    return { full: this.full, files: pick('file'), dirs: pick('dir'), trees: pick('tree') };
  }
}

function randomAdds(seed: number, n: number, names = ['a', 'b', 'c'], maxDepth = 4): Array<[string, ChangeKind]> {
  const r = new Rng(seed);
  const kinds: ChangeKind[] = ['file', 'file', 'file', 'dir', 'dir', 'tree'];
  const out: Array<[string, ChangeKind]> = [];
  for (let i = 0; i < n; i++) {
    const depth = r.int(1, maxDepth);
    const segs = Array.from({ length: depth }, () => r.pick(names));
    out.push([segs.join('/'), r.pick(kinds)]);
  }
  return out;
}

describe('ChangeSet basics', () => {
  it('rejects a limit that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, NaN, Infinity]) assert.throws(() => new ChangeSet(bad), RangeError);
  });

  it('starts empty', () => {
    const cs = new ChangeSet(10);
    assert.equal(cs.isEmpty, true);
    assert.equal(cs.full, false);
    assert.equal(cs.size, 0);
    assert.deepEqual(cs.toChanges('name'), { name: 'name', ...empty });
  });

  it('keeps one entry of each kind, sorted, and ignores repeats', () => {
    const cs = set(BIG, [
      ['z/f', 'file'],
      ['a/f', 'file'],
      ['d', 'dir'],
      ['t', 'tree'],
      ['a/f', 'file'],
      ['d', 'dir'],
      ['t', 'tree'],
    ]);
    assert.equal(cs.size, 4);
    assert.equal(cs.isEmpty, false);
    assert.deepEqual(changes(cs), { full: false, files: ['a/f', 'z/f'], dirs: ['d'], trees: ['t'] });
  });

  it('keeps a dir entry together with entries below it', () => {
    const cs = set(BIG, [
      ['d', 'dir'],
      ['d/f', 'file'],
      ['d/e', 'dir'],
      ['d/e/g', 'file'],
    ]);
    assert.deepEqual(changes(cs), { full: false, files: ['d/e/g', 'd/f'], dirs: ['d', 'd/e'], trees: [] });
    assert.equal(cs.size, 4);
  });

  it('names the result after the argument of toChanges', () => {
    assert.equal(set(5, [['a', 'file']]).toChanges('docs').name, 'docs');
  });

  it('rejects malformed paths and kinds', () => {
    const cs = new ChangeSet(10);
    for (const bad of ['/a', 'a/', 'a//b', './a', 'a/..', '..', 'a\0b', 'x'.repeat(256)]) {
      assert.throws(() => cs.add(bad, 'file'), TypeError, JSON.stringify(bad));
    }
    assert.throws(() => cs.add('a', 'link' as ChangeKind), TypeError);
    assert.equal(cs.isEmpty, true);
  });

  it('accepts names with spaces, newlines, unicode, wildcards and leading dashes', () => {
    const names = ['sp ace', 'new\nline', 'ünï/日本', '-rf', '*?[]\\', 'a/***'];
    const cs = set(BIG, names.map((n) => [n, 'file']));
    assert.deepEqual(changes(cs).files, [...names].sort());
  });

  it('clear() empties the set, full or not', () => {
    const cs = set(BIG, [['a', 'file']]);
    cs.clear();
    assert.equal(cs.isEmpty, true);
    cs.markFull();
    cs.clear();
    assert.equal(cs.isEmpty, true);
    assert.equal(cs.full, false);
    cs.add('b', 'dir');
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: ['b'], trees: [] });
  });
});

describe('ChangeSet full', () => {
  it("treats the root path '' as a full sync", () => {
    for (const kind of ['file', 'dir', 'tree'] as const) {
      const cs = set(BIG, [['a', 'file'], ['', kind]]);
      assert.equal(cs.full, true);
      assert.deepEqual(changes(cs), full);
    }
  });

  it('markFull drops the entries; a full set counts as one entry and is not empty', () => {
    const cs = set(BIG, [['a', 'file'], ['b/c', 'tree']]);
    cs.markFull();
    assert.equal(cs.full, true);
    assert.equal(cs.size, 1);
    assert.equal(cs.isEmpty, false);
    assert.deepEqual(cs.toChanges('x'), { name: 'x', ...full });
  });

  it('ignores adds once full, but still validates them', () => {
    const cs = new ChangeSet(10);
    cs.markFull();
    cs.add('a', 'file');
    cs.add('b', 'tree');
    assert.deepEqual(changes(cs), full);
    assert.throws(() => cs.add('/abs', 'file'), TypeError);
  });
});

describe('ChangeSet subsumption', () => {
  it('ignores anything added below a tree', () => {
    const cs = set(BIG, [
      ['a', 'tree'],
      ['a/f', 'file'],
      ['a/d', 'dir'],
      ['a/t', 'tree'],
      ['a/x/y/z', 'file'],
      ['a', 'dir'],
      ['a', 'file'],
    ]);
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['a'] });
    assert.equal(cs.size, 1);
  });

  it('drops what a new tree covers, at any depth, and nothing beside it', () => {
    const cs = set(BIG, [
      ['a/b/f', 'file'],
      ['a/b/c/d/e', 'file'],
      ['a/b/c', 'dir'],
      ['a/b/t', 'tree'],
      ['a/bb', 'file'],
      ['a/b.txt', 'file'],
      ['a', 'dir'],
    ]);
    assert.equal(cs.size, 7);
    cs.add('a/b', 'tree');
    assert.deepEqual(changes(cs), { full: false, files: ['a/b.txt', 'a/bb'], dirs: ['a'], trees: ['a/b'] });
    assert.equal(cs.size, 4);
  });

  it('turns a dir entry into a tree when the tree comes', () => {
    const cs = set(BIG, [['a', 'dir'], ['a/f', 'file'], ['a', 'tree']]);
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['a'] });
    assert.equal(cs.size, 1);
  });

  it('keeps only the outer of nested trees', () => {
    const inner = set(BIG, [['a/b', 'tree'], ['a', 'tree']]);
    const outer = set(BIG, [['a', 'tree'], ['a/b', 'tree']]);
    for (const cs of [inner, outer]) assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['a'] });
  });
});

describe('ChangeSet type changes', () => {
  it('promotes a path seen as file and as dir to a tree, in either order', () => {
    for (const order of [['file', 'dir'], ['dir', 'file']] as const) {
      const cs = set(BIG, [['x/p', order[0]], ['x/p', order[1]]]);
      assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['x/p'] });
      assert.equal(cs.size, 1);
    }
  });

  it('promotes a file with entries below it to a tree, in either order', () => {
    for (const kind of ['file', 'dir', 'tree'] as const) {
      const before = set(BIG, [['a', 'file'], ['a/b/c', kind], ['z', 'file']]);
      const after = set(BIG, [['a/b/c', kind], ['a/b', 'dir'], ['z', 'file'], ['a', 'file']]);
      for (const cs of [before, after]) {
        assert.deepEqual(changes(cs), { full: false, files: ['z'], dirs: [], trees: ['a'] }, kind);
        assert.equal(cs.size, 2);
      }
    }
  });

  it('does not promote a dir with entries below it', () => {
    const cs = set(BIG, [['a', 'dir'], ['a/b', 'file']]);
    assert.deepEqual(changes(cs), { full: false, files: ['a/b'], dirs: ['a'], trees: [] });
  });
});

describe('ChangeSet against a reference model', () => {
  it('matches the model and stays canonical over random adds', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const adds = randomAdds(seed, 40);
      const cs = new ChangeSet(BIG);
      const model = new Model();
      for (const [rel, kind] of adds) {
        cs.add(rel, kind);
        model.add(rel, kind);
        const c = cs.toChanges('p');
        assertCanonical(c);
        assert.deepEqual(changes(cs), model.changes(), `seed ${seed} after ${kind} ${rel}`);
        assert.equal(cs.size, model.entries.size);
      }
    }
  });

  it('does not depend on the order of adds (below the limit)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const adds = randomAdds(seed, 30);
      const shuffled = [...adds];
      const r = new Rng(seed * 7919);
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = r.below(i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
      }
      assert.deepEqual(changes(set(BIG, adds)), changes(set(BIG, shuffled)), `seed ${seed}`);
    }
  });
});

describe('ChangeSet collapse', () => {
  it('collapses the deepest groups first until at most half the limit', () => {
    const cs = set(4, [
      ['a/b/1', 'file'],
      ['a/b/2', 'file'],
      ['a/c/1', 'file'],
      ['x', 'file'],
    ]);
    assert.equal(cs.size, 4);
    cs.add('a/c/2', 'file'); // 5 > 4: a/b, then a/c, then a (2 entries) -> 2
    assert.deepEqual(changes(cs), { full: false, files: ['x'], dirs: [], trees: ['a'] });
    assert.equal(cs.size, 2);
  });

  it('stops as soon as the set is down to half the limit', () => {
    const cs = set(6, [
      ['a/b/1', 'file'],
      ['a/b/2', 'file'],
      ['a/b/3', 'file'],
      ['a/c/1', 'file'],
      ['a/c/2', 'file'],
      ['y', 'file'],
    ]);
    cs.add('z', 'file'); // 7 > 6, target 3: a/b (3 entries, the most at depth 2) -> 5, a/c -> 4, a -> 3
    assert.deepEqual(changes(cs), { full: false, files: ['y', 'z'], dirs: [], trees: ['a'] });

    const shallow = set(6, [
      ['p/q/1', 'file'],
      ['p/q/2', 'file'],
      ['p/q/3', 'file'],
      ['p/q/4', 'file'],
      ['p/r', 'file'],
      ['y', 'file'],
    ]);
    shallow.add('z', 'file'); // 7 > 6, target 3: p/q -> 4 entries, then p -> 3
    assert.deepEqual(changes(shallow), { full: false, files: ['y', 'z'], dirs: [], trees: ['p'] });
  });

  // Insertion orders below are chosen so that the trie's own order differs from the preferred one.
  it('at one depth, prefers the directory holding more entries', () => {
    const cs = set(10, [
      ...Array.from({ length: 7 }, (_, i): [string, ChangeKind] => [`z/${i}`, 'file']),
      ['b/1', 'file'],
      ['b/2', 'file'],
      ['b/3', 'file'],
    ]);
    cs.add('c', 'file'); // 11 > 10, target 5: z (7 entries) -> 5, done; b stays precise
    assert.deepEqual(changes(cs), { full: false, files: ['b/1', 'b/2', 'b/3', 'c'], dirs: [], trees: ['z'] });
  });

  it('at one depth and count, prefers the lower path', () => {
    const five = (d: string) => Array.from({ length: 5 }, (_, i): [string, ChangeKind] => [`${d}/${i}`, 'file']);
    const cs = set(14, [...five('a'), ...five('b'), ...five('c').slice(0, 4)]);
    cs.add('c/4', 'file'); // 15 > 14, target 7: a -> 11, b -> 7, done; c stays precise
    assert.deepEqual(changes(cs), { full: false, files: five('c').map(([p]) => p), dirs: [], trees: ['a', 'b'] });
  });

  it('skips directories that deeper collapses left holding one entry', () => {
    const cs = set(8, [
      ['a/x/1', 'file'],
      ['a/x/2', 'file'],
      ['b/y/1', 'file'],
      ['b/y/2', 'file'],
      ['b/y/3', 'file'],
      ['c', 'file'],
      ['d', 'file'],
      ['e', 'file'],
    ]);
    cs.add('f', 'file'); // 9 > 8, target 4: b/y -> 7, a/x -> 6; a and b now hold 1 each: full
    assert.equal(cs.full, true);

    const tie = set(9, [
      ['s/b/1', 'file'],
      ['s/b/2', 'file'],
      ['s/a/1', 'file'],
      ['s/a/2', 'file'],
      ['t1', 'file'],
      ['t2', 'file'],
      ['t3', 'file'],
      ['u/1', 'file'],
      ['u/2', 'file'],
    ]);
    tie.add('t4', 'file'); // 10 > 9, target 4: s/a -> 9, s/b -> 8, s (2) -> 7, u -> 6 > 4: full
    assert.equal(tie.full, true);

    // p/a holds one entry once p/a/x is collapsed: turning it into a tree would only lose precision.
    const precise = set(7, [
      ['p/a/x/1', 'file'],
      ['p/a/x/2', 'file'],
      ...Array.from({ length: 5 }, (_, i): [string, ChangeKind] => [`q/${i}`, 'file']),
    ]);
    precise.add('z', 'file'); // 8 > 7, target 3: p/a/x -> 7, (p/a skipped), q -> 3
    assert.deepEqual(changes(precise), { full: false, files: ['z'], dirs: [], trees: ['p/a/x', 'q'] });
  });

  it('leaves alone directories holding one entry: collapsing them frees nothing', () => {
    const cs = set(4, [
      ['deep/er/and/deeper/f', 'file'],
      ['g/1', 'file'],
      ['g/2', 'file'],
      ['g/3', 'file'],
    ]);
    cs.add('g/4', 'file'); // 5 > 4, target 2: only g holds more than one entry
    assert.deepEqual(changes(cs), { full: false, files: ['deep/er/and/deeper/f'], dirs: [], trees: ['g'] });
  });

  it('collapses a dir entry and what is below it into one tree', () => {
    const cs = set(4, [
      ['a/d', 'dir'],
      ['a/d/f', 'file'],
      ['a/d/e', 'dir'],
      ['a/d/e/g', 'file'],
    ]);
    cs.add('b', 'file'); // 5 > 4, target 2: a/d/e (2) -> 4, a/d (3) -> 2
    assert.deepEqual(changes(cs), { full: false, files: ['b'], dirs: [], trees: ['a/d'] });
  });

  it('becomes full when only top-level entries remain over the limit', () => {
    const cs = set(3, [
      ['f1', 'file'],
      ['f2', 'dir'],
      ['f3', 'tree'],
    ]);
    assert.equal(cs.full, false);
    cs.add('f4', 'file');
    assert.equal(cs.full, true);
    assert.equal(cs.size, 1);
  });

  it('works with a limit of 1', () => {
    const cs = set(1, [['a/x', 'file']]);
    cs.add('a/y', 'file');
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['a'] });
    cs.add('a/z/w', 'file');
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['a'] });
    cs.add('b', 'file');
    assert.equal(cs.full, true);
  });

  it('keeps new entries precise after a collapse until the limit is crossed again (hysteresis)', () => {
    const cs = new ChangeSet(10);
    for (let i = 0; i < 11; i++) cs.add(`hot/f${i}`, 'file');
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['hot'] });
    const added: string[] = [];
    for (let i = 0; i < 9; i++) {
      cs.add(`cold/f${i}`, 'file');
      added.push(`cold/f${i}`);
      assert.deepEqual(changes(cs), { full: false, files: [...added].sort(), dirs: [], trees: ['hot'] }, `size ${cs.size}`);
    }
    assert.equal(cs.size, 10);
    cs.add('cold/f9', 'file'); // 11 > 10, target 5: cold (10 entries) -> 2
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['cold', 'hot'] });
  });

  it('stays within the limit and canonical over random adds', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const limit = 1 + (seed % 12);
      const cs = new ChangeSet(limit);
      let wasFull = false;
      for (const [rel, kind] of randomAdds(seed, 60, ['a', 'b', 'c', 'd'], 5)) {
        cs.add(rel, kind);
        assert.ok(cs.size <= limit, `seed ${seed}: size ${cs.size} > limit ${limit}`);
        assertCanonical(cs.toChanges('p'));
        if (wasFull) assert.equal(cs.full, true, 'full is sticky until clear()');
        wasFull = cs.full;
      }
    }
  });

  it('never loses a change: every added path stays covered', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const limit = 1 + (seed % 9);
      const cs = new ChangeSet(limit);
      const seen: string[] = [];
      for (const [rel, kind] of randomAdds(seed, 50, ['a', 'b', 'c'], 4)) {
        cs.add(rel, kind);
        seen.push(rel);
        const c = cs.toChanges('p');
        if (c.full) continue;
        for (const p of seen) {
          const covered = c.files.includes(p) || c.dirs.includes(p) || c.trees.some((t) => isWithin(p, t));
          assert.ok(covered, `seed ${seed}: ${p} lost`);
        }
      }
    }
  });
});

describe('ChangeSet merge', () => {
  it('merges another set', () => {
    const a = set(BIG, [['x/f', 'file'], ['d', 'dir']]);
    const b = set(BIG, [['x', 'tree'], ['y', 'file']]);
    a.merge(b);
    assert.deepEqual(changes(a), { full: false, files: ['y'], dirs: ['d'], trees: ['x'] });
    assert.deepEqual(changes(b), { full: false, files: ['y'], dirs: [], trees: ['x'] }, 'the source is unchanged');
  });

  it('merges PathChanges, applying the same rules', () => {
    const a = set(BIG, [['p', 'file']]);
    a.merge({ name: 'ignored', full: false, files: ['q', 'p/child'], dirs: ['p'], trees: ['t'] });
    assert.deepEqual(changes(a), { full: false, files: ['q'], dirs: [], trees: ['p', 't'] });
  });

  it('applies trees first, so covered entries cannot cause a collapse', () => {
    // Files first would reach a/1 a/2 t/1 t/2 > 3 and collapse a and t, then go full.
    const a = new ChangeSet(3);
    a.merge({ name: 'n', full: false, files: ['a/1', 'a/2', 't/1', 't/2'], dirs: ['t/d'], trees: ['t'] });
    assert.deepEqual(changes(a), { full: false, files: ['a/1', 'a/2'], dirs: [], trees: ['t'] });
  });

  it('becomes full when merging a full set or full changes', () => {
    const a = set(BIG, [['x', 'file']]);
    const f = new ChangeSet(BIG);
    f.markFull();
    a.merge(f);
    assert.deepEqual(changes(a), full);
    const b = set(BIG, [['x', 'file']]);
    b.merge({ name: 'n', full: true, files: [], dirs: [], trees: [] });
    assert.equal(b.full, true);
  });

  it('stays full whatever is merged into it', () => {
    const a = new ChangeSet(BIG);
    a.markFull();
    a.merge(set(BIG, [['x', 'file']]));
    a.merge({ name: 'n', full: false, files: ['y'], dirs: [], trees: [] });
    assert.deepEqual(changes(a), full);
  });

  it('merging a set into itself changes nothing', () => {
    const a = set(BIG, [['x/f', 'file'], ['d', 'dir'], ['t', 'tree']]);
    const before = changes(a);
    a.merge(a);
    assert.deepEqual(changes(a), before);
  });

  it('merging an empty set or empty changes changes nothing', () => {
    const a = set(BIG, [['x', 'file']]);
    a.merge(new ChangeSet(1));
    a.merge({ name: 'n', full: false, files: [], dirs: [], trees: [] });
    assert.deepEqual(changes(a), { full: false, files: ['x'], dirs: [], trees: [] });
  });

  it('collapses on merge when the limit is crossed', () => {
    const a = set(6, [['a/1', 'file'], ['a/2', 'file']]);
    a.merge({ name: 'n', full: false, files: ['a/3', 'a/4', 'a/5', 'b'], dirs: ['c'], trees: [] });
    assert.deepEqual(changes(a), { full: false, files: ['b'], dirs: ['c'], trees: ['a'] });
  });

  it('round-trips through toChanges and from()', () => {
    const a = set(BIG, [['x/f', 'file'], ['d', 'dir'], ['t', 'tree'], ['d/e', 'file']]);
    const b = ChangeSet.from(a.toChanges('n'), BIG);
    assert.deepEqual(changes(b), changes(a));
    const f = ChangeSet.from({ name: 'n', full: true, files: [], dirs: [], trees: [] }, 5);
    assert.equal(f.full, true);
  });

  it('from() applies its limit', () => {
    const files = Array.from({ length: 10 }, (_, i) => `d/f${i}`);
    const cs = ChangeSet.from({ name: 'n', full: false, files, dirs: [], trees: [] }, 4);
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['d'] });
  });
});

// How fast belongs in `npm run bench`; these check only what the set holds at scale.
describe('ChangeSet scale', () => {
  it('stays bounded by its limit through 100,000 distinct files', () => {
    const cs = new ChangeSet(1000);
    let maxSize = 0;
    for (let i = 0; i < 100_000; i++) {
      cs.add(`d${i % 97}/s${i % 13}/t${i % 5}/f${i}`, 'file');
      if (cs.size > maxSize) maxSize = cs.size;
    }
    assert.ok(maxSize <= 1000, `size reached ${maxSize}`);
    assertCanonical(cs.toChanges('p'));
  });

  it('keeps 100,000 distinct files under a high limit', () => {
    const cs = new ChangeSet(200_000);
    for (let i = 0; i < 100_000; i++) cs.add(`d${i % 97}/s${i % 13}/f${i}`, 'file');
    const c = cs.toChanges('p');
    assert.equal(cs.size, 100_000);
    assert.equal(c.files.length, 100_000);
  });

  it('takes 100,000 files in one directory and a flat top level', () => {
    const one = new ChangeSet(5000);
    const flat = new ChangeSet(5000);
    for (let i = 0; i < 100_000; i++) {
      one.add(`dir/f${i}`, 'file');
      flat.add(`f${i}`, 'file');
    }
    assert.deepEqual(changes(one).trees, ['dir']);
    assert.equal(flat.full, true);
  });

  it('handles 100-deep paths', () => {
    const deep = Array.from({ length: 100 }, (_, i) => `l${i}`).join('/');
    const cs = set(BIG, [[`${deep}/f`, 'file'], [`${deep}/g`, 'file']]);
    assert.deepEqual(changes(cs).files, [`${deep}/f`, `${deep}/g`]);
    cs.add('l0/l1', 'tree');
    assert.deepEqual(changes(cs), { full: false, files: [], dirs: [], trees: ['l0/l1'] });
    const small = set(2, [[`${deep}/a`, 'file'], [`${deep}/b`, 'file'], [`${deep}/c`, 'file']]);
    assert.deepEqual(changes(small), { full: false, files: [], dirs: [], trees: [deep] });
  });
});
