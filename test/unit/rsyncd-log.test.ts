// What the rsync daemon says: its log file followed from where it ended, its
// output split into lines, rsync's timestamps removed.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { daemonLogText, LogTail, splitLines } from '../../src/master/rsyncd/log-tail.js';
import { waitFor } from '../../harness/wait.js';

const dir = mkdtempSync(join(tmpdir(), 'inosync-rsyncd-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('daemonLogText', () => {
  const cases: [string, string][] = [
    ['2026/12/03 18:00:01 [123] connect from localhost (127.0.0.1)', '[123] connect from localhost (127.0.0.1)'],
    ['@ERROR: auth failed on module www  ', '@ERROR: auth failed on module www'],
    ['2026/12/03 18:00:01 ', ''],
    ['   ', ''],
    ['a 2026/12/03 18:00:01 b', 'a 2026/12/03 18:00:01 b'],
  ];
  for (const [line, want] of cases) test(JSON.stringify(line), () => assert.equal(daemonLogText(line), want));
});

describe('LogTail', () => {
  test('reports what is appended after it opened, the unterminated last line on close', async () => {
    const file = join(dir, 'follow.log');
    writeFileSync(file, 'from an earlier daemon\n');
    const lines: string[] = [];
    const tail = await LogTail.open(file, (l) => lines.push(l));
    appendFileSync(file, 'first\nsecond\nünïcødé\nno newline');
    await tail.close();
    assert.deepEqual(lines, ['first', 'second', 'ünïcødé', 'no newline']);
  });

  test('creates a missing log file private', async () => {
    const file = join(dir, 'new.log');
    const tail = await LogTail.open(file, () => undefined);
    await tail.close();
    assert.equal(statSync(file).mode & 0o077, 0);
  });

  test('empties the file once read past the limit, and reads on from its start', async () => {
    const file = join(dir, 'rotate.log');
    const lines: string[] = [];
    const tail = await LogTail.open(file, (l) => lines.push(l), 64);
    appendFileSync(file, `${'x'.repeat(100)}\n`);
    // A poll (every 200 ms) reads the line and empties the file.
    await waitFor(() => statSync(file).size === 0, 5_000, 'the log file emptied');
    assert.deepEqual(lines, ['x'.repeat(100)]);
    appendFileSync(file, 'after\n');
    await tail.close();
    assert.deepEqual(lines, ['x'.repeat(100), 'after']);
  });
});

test('splitLines: every line, the last one without its newline too', async () => {
  const stream = new PassThrough();
  const lines: string[] = [];
  splitLines(stream, (l) => lines.push(l));
  stream.write('one\ntw');
  stream.write('o\n\nthree');
  stream.end();
  await new Promise((r) => stream.on('end', r));
  assert.deepEqual(lines, ['one', 'two', '', 'three']);
});
