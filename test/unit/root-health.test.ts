// The root-health verdict on its own, and the poller on real directories.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../harness/manual-clock.js';
import {
  judgeRoot,
  observeRoot,
  RootPoller,
  guardWatchedRoot,
  type RootIdentity,
  type RootObservation,
  type RootProblem,
  type RootVerdict,
} from '../../src/master/root-health.js';

const ROOT = '/srv/www';
const AT_START: RootIdentity = { dev: 10, ino: 100, marker: true };

function seen(over: Partial<Extract<RootObservation, { found: true }>> = {}): RootObservation {
  return { found: true, isDir: true, dev: 10, ino: 100, readable: true, marker: true, ...over };
}

describe('judgeRoot', () => {
  const MASTER: ReadonlySet<RootProblem> = new Set(['replaced']);
  const cases: Array<{ what: string; obs: RootObservation; expected?: RootIdentity | null; tolerate?: ReadonlySet<RootProblem>; problem: RootProblem | null; reason?: RegExp }> = [
    { what: 'as at start', obs: seen(), problem: null },
    { what: 'deleted', obs: { found: false, code: 'ENOENT' }, problem: 'gone', reason: /^watched root \/srv\/www is gone \(was deleted or moved away: ENOENT\)$/ },
    { what: 'a parent replaced by a file', obs: { found: false, code: 'ENOTDIR' }, problem: 'gone', reason: /is gone/ },
    { what: 'stat fails otherwise', obs: { found: false, code: 'EACCES' }, problem: 'unstattable', reason: /can no longer be read \(EACCES\)/ },
    { what: 'a file now', obs: seen({ isDir: false }), problem: 'not-dir', reason: /is no longer a directory/ },
    { what: 'unreadable', obs: seen({ readable: false }), problem: 'unreadable', reason: /is not readable/ },
    { what: 'readability not looked at', obs: seen({ readable: null }), problem: null },
    { what: 'unmounted: the parent filesystem shows through', obs: seen({ dev: 11, ino: 2 }), problem: 'other-fs', reason: /another filesystem than at start \(unmounted\?\)/ },
    { what: 'deleted and made again', obs: seen({ ino: 101 }), problem: 'replaced', reason: /different directory/ },
    { what: 'deleted and made again, to the master', obs: seen({ ino: 101 }), tolerate: MASTER, problem: null },
    { what: 'made again without its marker, to the master: the marker still counts', obs: seen({ ino: 101, marker: false }), tolerate: MASTER, problem: 'no-marker' },
    { what: 'unmounted, to the master too', obs: seen({ dev: 11 }), tolerate: MASTER, problem: 'other-fs' },
    { what: 'marker missing', obs: seen({ marker: false }), problem: 'no-marker', reason: /^marker file \/srv\/www\/\.mounted is missing \(source not mounted\?\)$/ },
    { what: 'marker not looked at', obs: seen({ marker: null }), problem: null },
    { what: 'at start: any directory is the identity', obs: seen({ dev: 99, ino: 5 }), expected: null, problem: null },
    { what: 'at start: the marker must be there', obs: seen({ marker: false }), expected: null, problem: 'no-marker' },
    { what: 'a directory gone is gone whatever is tolerated', obs: { found: false, code: 'ENOENT' }, tolerate: new Set<RootProblem>(['gone']), problem: 'gone' },
    { what: 'a file now and on another device: the first problem is the verdict', obs: seen({ isDir: false, dev: 11 }), problem: 'not-dir' },
  ];
  for (const c of cases) {
    it(c.what, () => {
      const v = judgeRoot(ROOT, '.mounted', c.obs, c.expected === undefined ? AT_START : c.expected, c.tolerate);
      if (c.problem === null) {
        assert.equal(v.ok, true, JSON.stringify(v));
        return;
      }
      assert.equal(v.ok, false);
      if (v.ok) return;
      assert.equal(v.problem, c.problem);
      assert.ok(v.reason.endsWith(v.what) || c.problem === 'no-marker', 'the reason is "watched root <dir> " and what happened');
      if (c.reason) assert.match(v.reason, c.reason);
    });
  }

  it('the identity is what was found', () => {
    assert.deepEqual(judgeRoot(ROOT, undefined, seen({ dev: 3, ino: 4, marker: null }), null), { ok: true, identity: { dev: 3, ino: 4, marker: false } });
  });
});

describe('observeRoot and the poller, on real directories', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inosync-root-'));
  const root = join(dir, 'www');

  it('observes a directory, its marker, and its absence', () => {
    mkdirSync(root);
    const obs = observeRoot(root, { readable: true, marker: 'm' });
    assert.equal(obs.found && obs.marker, false);
    assert.equal(obs.found && obs.readable, true);
    writeFileSync(join(root, 'm'), '');
    assert.equal(observeRoot(root, { marker: 'm' }).found && (observeRoot(root, { marker: 'm' }) as { marker: boolean }).marker, true);
    assert.equal(observeRoot(join(dir, 'nope')).found, false);
    rmSync(root, { recursive: true });
  });

  it('looks on its clock until stopped; the caller judges each look', () => {
    mkdirSync(root);
    const clock = new ManualClock();
    const start = judgeRoot(root, undefined, observeRoot(root), null);
    assert.ok(start.ok);
    const verdicts: RootVerdict[] = [];
    const tolerate = new Set<RootProblem>(['replaced']);
    const p = new RootPoller({ root, everyMs: 2_000, clock, onLook: (obs) => verdicts.push(judgeRoot(root, undefined, obs, start.identity, tolerate)) });
    p.start();
    clock.advance(1_999);
    assert.equal(verdicts.length, 0, 'not before the interval');
    clock.advance(1);
    assert.deepEqual(verdicts.map((v) => v.ok), [true]);
    // Deleted and made again: tolerated by a caller that syncs it (the master).
    rmSync(root, { recursive: true });
    clock.advance(2_000);
    mkdirSync(root);
    clock.advance(2_000);
    assert.deepEqual(verdicts.map((v) => (v.ok ? 'ok' : v.problem)), ['ok', 'gone', 'ok']);
    p.stop();
    clock.advance(10_000);
    assert.equal(verdicts.length, 3, 'nothing after stop');
    assert.equal(clock.waiting, 0, 'no timer left behind');
    rmSync(root, { recursive: true });
  });

  it("a watcher's guard reports a directory made again as lost, once", async () => {
    mkdirSync(root);
    const obs = observeRoot(root);
    assert.ok(obs.found);
    const lost: string[] = [];
    const g = guardWatchedRoot({ configured: root, dev: obs.dev, ino: obs.ino }, (what) => lost.push(what));
    g.check();
    assert.deepEqual(lost, []);
    renameSync(root, root + '.old');
    mkdirSync(root);
    g.check();
    g.check();
    assert.equal(lost.length, 1, 'reported once');
    assert.match(lost[0]!, /different directory/);
    rmSync(dir, { recursive: true });
  });
});
