// The Applier's retry backoff, timed by a ManualClock. rsync is really run:
// a binary that does not exist is the failure (as when rsync is not
// installed), /bin/true the success, so no process pretends to be rsync.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../harness/manual-clock.js';
import { Applier } from '../../src/agent/applier.js';
import type { RunReport } from '../../src/protocol/messages.js';
import { quietLog } from '../../harness/quiet-log.js';
import { sleep, waitFor } from '../../harness/wait.js';

const MISSING = '/nonexistent/inosync-test/rsync';
const TRUE = '/bin/true';


interface Result {
  seq: number;
  ok: boolean;
  runs: RunReport[];
}

/** Real time for a spawn to fail or succeed: lets anything started actually run. */
function setup(t: { after: (fn: () => void | Promise<void>) => void }, retryMinMs = 100, retryMaxMs = 350) {
  const clock = new ManualClock();
  const target = mkdtempSync(join(tmpdir(), 'inosync-applier-'));
  const rsync = { binary: MISSING, bwlimit: 0, extra: [], timeout: 30 };
  const results: Result[] = [];
  const applied: number[] = [];
  const applier = new Applier({
    rsync,
    dryRun: false,
    log: quietLog,
    clock,
    retryMinMs,
    retryMaxMs,
    password: () => null,
    onApplied: (seq) => applied.push(seq),
    onResult: (seq, ok, runs) => results.push({ seq, ok, runs }),
  });
  applier.setPaths([{ name: 'www', target, maxDelete: 0, excludes: [], url: 'rsync://mirror1@127.0.0.1:9/www/' }]);
  t.after(async () => {
    await applier.stop();
    rmSync(target, { recursive: true, force: true });
  });
  return { clock, rsync, results, applied, applier };
}

const change = (files: string[]) => [{ name: 'www', full: false, files, dirs: [], trees: [] }];

/** Checks that no run starts before `ms` has passed, and one does at `ms`. */
async function nextRunAfter(s: ReturnType<typeof setup>, ms: number): Promise<void> {
  const runs = s.applier.runs;
  s.clock.advance(ms - 1);
  await sleep(50);
  assert.equal(s.applier.runs, runs, `no run before ${ms} ms`);
  s.clock.advance(1);
  await waitFor(() => s.applier.runs === runs + 1 && s.results.length === runs + 1, 5_000, `the run after ${ms} ms`);
}

test('a failed run is retried after a delay that doubles up to the maximum', async (t) => {
  const s = setup(t);
  s.applier.enqueue(1, change(['a']));
  await waitFor(() => s.results.length === 1, 5_000, 'the first run');
  assert.equal(s.results[0]!.ok, false);
  assert.equal(s.results[0]!.runs[0]!.kind, 'retry');
  assert.match(s.results[0]!.runs[0]!.message, /cannot run .*rsync/);
  for (const delay of [100, 200, 350, 350]) await nextRunAfter(s, delay);
  assert.deepEqual(s.applied, [], 'nothing counts as applied while rsync fails');
  assert.equal(s.applier.idle, false, 'the changes are still pending');
});

test('after a success, the next failure waits the shortest delay again', async (t) => {
  const s = setup(t);
  s.applier.enqueue(1, change(['a']));
  await waitFor(() => s.results.length === 1, 5_000, 'the first run');
  await nextRunAfter(s, 100);
  s.rsync.binary = TRUE;
  await nextRunAfter(s, 200);
  assert.equal(s.results.at(-1)!.ok, true);
  assert.deepEqual(s.applied, [1]);
  await waitFor(() => s.applier.idle, 5_000, 'the applier to go idle');

  s.rsync.binary = MISSING;
  s.applier.enqueue(2, change(['b']));
  await waitFor(() => s.results.length === 4, 5_000, 'the run of batch 2');
  assert.equal(s.results.at(-1)!.ok, false);
  await nextRunAfter(s, 100);
});

test('retryNow skips the wait, and changes that arrive meanwhile join the retry', async (t) => {
  const s = setup(t, 10_000, 10_000);
  s.applier.enqueue(1, change(['a']));
  await waitFor(() => s.results.length === 1, 5_000, 'the first run');
  s.applier.enqueue(2, change(['b']));
  await sleep(50);
  assert.equal(s.applier.runs, 1, 'a new batch does not cut the backoff short');
  s.rsync.binary = TRUE;
  s.applier.retryNow();
  await waitFor(() => s.results.length === 2, 5_000, 'the retried run');
  assert.equal(s.results[1]!.seq, 2);
  assert.equal(s.results[1]!.ok, true);
  assert.deepEqual(s.applied, [2], 'one run applied both batches');
  assert.equal(s.applier.runs, 2);
});
