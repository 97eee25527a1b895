// The master's small pure pieces: which handshake makes room for a new
// connection, which events the config admits, how a change is kept, and how
// a batch is kept under the frame limit.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeRoomFor, MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDRESS } from '../../src/master/listener.js';
import { admits, kindOf, splitChanges, summarize } from '../../src/master/batches.js';
import type { PathChanges } from '../../src/protocol/changes.js';
import { MAX_BATCH_ENTRIES } from '../../src/protocol/limits.js';
import type { WatchEventKind } from '../../src/master/watcher/types.js';

describe('makeRoomFor: who goes when the handshake slots are full', () => {
  const conns = (spec: Array<[string, number]>): { id: number; address: string }[] => {
    const out: { id: number; address: string }[] = [];
    for (const [address, n] of spec) for (let i = 0; i < n; i++) out.push({ id: out.length, address });
    return out;
  };
  const cases: Array<[string, Array<[string, number]>, string, number | null]> = [
    ['room for everyone', [['a', 3]], 'a', null],
    ['an address at its limit: its own oldest goes', [['b', 2], ['a', MAX_HANDSHAKES_PER_ADDRESS]], 'a', 2],
    ['an address one under its limit: nobody goes', [['a', MAX_HANDSHAKES_PER_ADDRESS - 1]], 'a', null],
    ['all slots full, from many addresses: the oldest of all goes', Array.from({ length: MAX_HANDSHAKES / 8 }, (_, i): [string, number] => [`x${i}`, 8]), 'new', 0],
    [
      'all slots full and this address at its limit: its own oldest, not the oldest of all',
      [...Array.from({ length: (MAX_HANDSHAKES - MAX_HANDSHAKES_PER_ADDRESS) / 8 }, (_, i): [string, number] => [`x${i}`, 8]), ['a', MAX_HANDSHAKES_PER_ADDRESS]],
      'a',
      MAX_HANDSHAKES - MAX_HANDSHAKES_PER_ADDRESS,
    ],
  ];
  for (const [what, spec, address, goes] of cases) {
    it(what, () => {
      const waiting = conns(spec);
      assert.equal(makeRoomFor(waiting, address)?.id ?? null, goes);
    });
  }
});

describe('admits: which watcher events the configured `events` let through', () => {
  const cases: Array<[string[], WatchEventKind, boolean]> = [
    [['create'], 'create', true],
    [['create'], 'delete', false],
    [['move'], 'create', true],
    [['move'], 'delete', true],
    [['move'], 'modify', false],
    [['modify'], 'attrib', true],
    [['attrib'], 'modify', true],
    [['delete'], 'modify', false],
    [[], 'create', false],
  ];
  for (const [allowed, kind, yes] of cases) it(`${allowed.join(',') || '(none)'} ${yes ? 'admits' : 'does not admit'} ${kind}`, () => assert.equal(admits(allowed, kind), yes));
});

describe('kindOf', () => {
  const cases: Array<[WatchEventKind, boolean, string]> = [
    ['create', true, 'tree'],
    ['delete', true, 'tree'],
    ['modify', true, 'dir'],
    ['attrib', true, 'dir'],
    ['create', false, 'file'],
    ['delete', false, 'file'],
  ];
  for (const [kind, isDir, want] of cases) it(`${kind} of a ${isDir ? 'directory' : 'file'} is a ${want}`, () => assert.equal(kindOf({ kind, path: 'x', isDir }), want));
});

describe('splitChanges and summarize', () => {
  const path = (name: string, files: number): PathChanges => ({ name, full: false, files: Array.from({ length: files }, (_, i) => `f${i}`), dirs: [], trees: [] });
  it('a batch under the limit stays one', () => {
    const c = [path('a', 10), path('b', 10)];
    assert.deepEqual(splitChanges(c), [c]);
  });
  it('over the limit: one batch per path, and a path too big for a frame becomes a full sync', () => {
    const parts = splitChanges([path('a', MAX_BATCH_ENTRIES), path('b', 1)]);
    assert.equal(parts.length, 2);
    assert.equal(parts[0]![0]!.files.length, MAX_BATCH_ENTRIES);
    assert.deepEqual(splitChanges([path('a', MAX_BATCH_ENTRIES + 1)]), [[{ name: 'a', full: true, files: [], dirs: [], trees: [] }]]);
  });
  it('the log line names a bounded number of entries', () => {
    assert.equal(summarize([{ name: 'www', full: false, files: ['a'], dirs: ['d'], trees: ['t'] }]), 'www:a,d/,t/***');
    assert.equal(summarize([{ name: 'www', full: true, files: [], dirs: [], trees: [] }]), 'www:full');
    assert.match(summarize([path('www', 25)]), /^www:f0,.*f19,\.\.\.$/);
  });
});
