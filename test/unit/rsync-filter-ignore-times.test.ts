// --ignore-times is for small file-only runs: a big file-only run is usually
// the files found in directories that the previous run already synced as trees.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRsyncArgs, MAX_IGNORE_TIMES_FILES } from '../../src/rsync/filter.js';
import type { PathChanges } from '../../src/protocol/changes.js';

const spec = (changes: PathChanges) => ({
  binary: 'rsync',
  url: 'rsync://127.0.0.1:8730/www/',
  target: '/srv/www',
  excludes: [],
  changes,
  bwlimit: 0,
  timeout: 0,
  extra: [],
  maxDelete: 0,
  isRoot: false,
});
const files = (n: number): PathChanges => ({
  name: 'www',
  full: false,
  files: Array.from({ length: n }, (_, i) => `d${i % 7}/f${i}`).sort(),
  dirs: [],
  trees: [],
});
const has = (c: PathChanges) => buildRsyncArgs(spec(c)).args.includes('--ignore-times');

test('a file-only run compares every file up to MAX_IGNORE_TIMES_FILES files, not beyond', () => {
  assert.equal(has(files(1)), true);
  assert.equal(has(files(MAX_IGNORE_TIMES_FILES)), true);
  assert.equal(has(files(MAX_IGNORE_TIMES_FILES + 1)), false);
  assert.equal(has({ ...files(3), trees: ['t'] }), false);
  // Directories carry no content: many of them do not switch it off...
  assert.equal(has({ ...files(2), dirs: Array.from({ length: 1000 }, (_, i) => `dir${i}/sub`) }), true);
  // ...unless they crowd one directory, now synced as `/*` by the quick check.
  assert.equal(has({ ...files(2), dirs: Array.from({ length: 1000 }, (_, i) => `dir${i}`) }), false);
});
