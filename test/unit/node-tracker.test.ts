// NodeTracker on its own: what the master owes one node, what is in flight,
// and the state and figures the status page derives from them. Time is passed
// in explicitly, so every lag here is exact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LAGGING_AFTER_S, NodeTracker } from '../../src/master/node-tracker.js';
import { PACE_FACTOR, PACE_MAX_MS, PACE_MIN_RUN_MS, QUIET_MS, restAfter, sendableAt } from '../../src/master/pacing.js';
import type { PathChanges } from '../../src/protocol/changes.js';
import type { RunReport } from '../../src/protocol/messages.js';
import { ManualClock } from '../../harness/manual-clock.js';

const KEY = new Uint8Array(32);
const T0 = 1_700_000_000_000;

function changes(name: string, files: string[] = [], over: Partial<PathChanges> = {}): PathChanges {
  return { name, full: false, files, dirs: [], trees: [], ...over };
}

function run(kind: RunReport['kind'], over: Partial<RunReport> = {}): RunReport {
  return { path: 'www', full: false, kind, exit: kind === 'ok' ? 0 : null, message: '', files: 1, bytes: 10, deleted: 0, durationMs: 5, ...over };
}

/** A tracker whose node connected at T0 and applied its initial sync. */
function synced(paths = ['www']): NodeTracker {
  const t = new NodeTracker('n1', KEY, paths, 100);
  t.onReady('1.0.0', T0);
  const { changes: c, oldest } = t.takePending();
  t.recordSent(1, c, oldest, T0);
  t.onResult(1, true, [run('ok', { full: true })], T0);
  return t;
}

test('a new node owes a full sync of every path and has never connected', (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: T0 });
  const n = new NodeTracker('n1', KEY, ['www', 'feeds'], 100);
  assert.equal(n.state(T0), 'never-connected');
  assert.equal(n.pendingCount, 2, 'a full path counts as one');
  assert.ok(n.hasPending);
  assert.equal(n.lagSeconds(T0 + 5_000), 5, 'owed since the tracker was made');
  const s = n.status(T0 + 5_000);
  assert.equal(s.connected, false);
  assert.equal(s.pending, 2);
  assert.equal(s.inFlight, 0);
  assert.equal(s.lastSync, null);
  assert.equal(s.lastBatchSent, null);
});

test('an unauthenticated attempt moves neither state nor lastSeen nor address: only a refusal is recorded', () => {
  const n = new NodeTracker('n1', KEY, ['www'], 100);
  n.onRefused(new Date(T0).toISOString(), '10.6.6.6:4000', 'closed before authenticating');
  assert.equal(n.state(T0), 'never-connected');
  assert.equal(n.status(T0).lastSeen, null);
  assert.equal(n.status(T0).address, null);
  n.onReady('1.0.0', T0 + 1, '10.0.0.1:5000');
  n.onDisconnect(T0 + 2);
  n.onRefused(new Date(T0 + 10).toISOString(), '10.6.6.6:4001', 'handshake timeout');
  const s = n.status(T0 + 10);
  assert.equal(s.state, 'disconnected');
  assert.equal(s.lastSeen, new Date(T0 + 2).toISOString());
  assert.equal(s.address, '10.0.0.1:5000');
  assert.deepEqual(s.lastRefusal, { at: new Date(T0 + 10).toISOString(), address: '10.6.6.6:4001', reason: 'handshake timeout' });
});

test('initial sync: sent, acked, applied, then idle', () => {
  const n = new NodeTracker('n1', KEY, ['www'], 100);
  n.onReady('1.0.0', T0);
  const { changes: c, oldest } = n.takePending();
  assert.deepEqual(c, [changes('www', [], { full: true })]);
  assert.equal(n.hasPending, false);
  n.recordSent(7, c, oldest, T0);
  assert.equal(n.state(T0), 'initial-sync');
  assert.equal(n.inflight.length, 1);
  n.onAck(7, T0 + 1);
  assert.equal(n.inflight[0]!.acked, true);
  assert.equal(n.lastAcked, 7);
  assert.equal(n.state(T0 + 1), 'initial-sync', 'acked is not applied');
  n.onResult(7, true, [run('ok', { full: true, files: 3, bytes: 300, durationMs: 40 })], T0 + 2);
  assert.equal(n.state(T0 + 2), 'idle');
  const s = n.status(T0 + 2);
  assert.equal(s.lastBatchSent, 7);
  assert.equal(s.lastBatchAcked, 7);
  assert.equal(s.lastBatchApplied, 7);
  assert.equal(s.pending, 0);
  assert.equal(s.inFlight, 0);
  assert.equal(s.lagSeconds, 0);
  assert.deepEqual(s.lastSync, { at: new Date(T0 + 2).toISOString(), durationMs: 40, files: 3, bytes: 300, full: true });
  assert.deepEqual(s.syncs, { ok: 1, failed: 0 });
  assert.equal(s.filesTotal, 3);
  assert.equal(s.bytesTotal, 300);
});

test('absorb merges into what is owed and keeps the oldest change time', () => {
  const n = synced(['www', 'feeds']);
  n.absorb([changes('www', ['a'])], T0 + 100);
  n.absorb([changes('www', ['b']), changes('feeds', ['x'])], T0 + 50);
  n.absorb([changes('www', ['a'])], T0 + 500);
  assert.equal(n.pendingOldest, T0 + 50);
  assert.equal(n.pendingCount, 3, 'a repeated path is one entry');
  const { changes: c, oldest } = n.takePending();
  assert.equal(oldest, T0 + 50);
  assert.deepEqual(c.map((x) => [x.name, x.files]), [['www', ['a', 'b']], ['feeds', ['x']]]);
  assert.equal(n.hasPending, false);
  assert.equal(n.pendingOldest, null);
  assert.deepEqual(n.takePending().changes, [], 'taken once');
});

test('pending beyond the limit collapses instead of growing', () => {
  const n = synced();
  for (let d = 0; d < 50; d++) n.absorb([changes('www', Array.from({ length: 50 }, (_, i) => `d${d}/f${i}`))], T0);
  assert.ok(n.pendingCount <= 100, `pending ${n.pendingCount} over the limit of 100`);
  assert.ok(n.pendingCount >= 1);
});

test('takePending holds back paused paths, and their age with them', () => {
  const n = synced(['www', 'feeds']);
  n.absorb([changes('www', ['a']), changes('feeds', ['x'])], T0 + 10);
  const { changes: c, oldest } = n.takePending(new Set(['feeds']));
  assert.deepEqual(c.map((x) => x.name), ['www']);
  assert.equal(oldest, T0 + 10);
  assert.ok(n.hasPending, 'feeds is still owed');
  assert.equal(n.pendingOldest, T0 + 10, 'the held change is as old as ever');
  assert.deepEqual(n.takePending().changes.map((x) => x.name), ['feeds']);
  assert.equal(n.pendingOldest, null);
});

test('a result covers every batch up to its seq; later ones stay in flight', () => {
  const n = synced();
  n.recordSent(2, [changes('www', ['a'])], T0 + 10, T0 + 10);
  n.recordSent(3, [changes('www', ['b'])], T0 + 20, T0 + 20);
  n.recordSent(4, [changes('www', ['c'])], T0 + 30, T0 + 30);
  assert.equal(n.state(T0 + 30), 'syncing');
  // The agent merged 2 and 3 into one run.
  n.onResult(3, true, [run('ok')], T0 + 40);
  assert.deepEqual(n.inflight.map((f) => f.seq), [4]);
  assert.equal(n.lastApplied, 3);
  assert.equal(n.lagSeconds(T0 + 40), 0.01, 'only batch 4 is unapplied');
  n.onResult(4, true, [run('ok')], T0 + 50);
  assert.equal(n.state(T0 + 50), 'idle');
});

test('a retryable failure keeps the batch in flight and shows the error until a run succeeds', () => {
  const n = synced();
  n.recordSent(2, [changes('www', ['a'])], T0 + 10, T0 + 10);
  n.onResult(2, false, [run('retry', { exit: 3, message: 'Errors selecting input/output files, dirs: cannot stat destination' })], T0 + 20);
  assert.deepEqual(n.inflight.map((f) => f.seq), [2], 'the agent still owes it');
  assert.equal(n.state(T0 + 20), 'error');
  const s = n.status(T0 + 20);
  assert.deepEqual(s.lastError, {
    at: new Date(T0 + 20).toISOString(),
    path: 'www',
    exit: 3,
    kind: 'retry',
    message: 'Errors selecting input/output files, dirs: cannot stat destination',
  });
  assert.deepEqual(s.syncs, { ok: 1, failed: 1 });
  assert.equal(s.inFlight, 1);
  assert.equal(s.lastBatchApplied, 1, 'not applied yet');
  // The retry succeeds.
  n.onResult(2, true, [run('ok')], T0 + 30);
  assert.equal(n.state(T0 + 30), 'idle');
  assert.equal(n.lastError, null);
  assert.equal(n.inflight.length, 0);
});

test('a fatal failure drops the batch: retrying it would fail the same way', () => {
  const n = synced();
  n.recordSent(2, [changes('www', ['a'])], T0 + 10, T0 + 10);
  n.onResult(2, false, [run('fatal', { exit: 25, message: 'The --max-delete limit stopped deletions' })], T0 + 20);
  assert.equal(n.inflight.length, 0);
  assert.equal(n.hasPending, false);
  assert.equal(n.lastApplied, 2);
  assert.equal(n.state(T0 + 20), 'error');
  assert.equal(n.lastError?.exit, 25);
  assert.equal(n.lastError?.kind, 'fatal');
  // A failure without a failed run still says something.
  n.recordSent(3, [changes('www', ['b'])], T0 + 30, T0 + 30);
  n.onResult(3, false, [], T0 + 40);
  assert.deepEqual({ ...n.lastError, at: null }, { at: null, path: null, exit: null, kind: 'fatal', message: 'sync failed' });
});

test('a disconnect owes again whatever was in flight, with its age', () => {
  const n = synced();
  n.recordSent(2, [changes('www', ['a'])], T0 + 10, T0 + 10);
  n.recordSent(3, [changes('www', [], { trees: ['d'] })], T0 + 20, T0 + 20);
  n.absorb([changes('www', ['z'])], T0 + 30);
  n.onDisconnect(T0 + 40);
  assert.equal(n.inflight.length, 0);
  assert.equal(n.state(T0 + 40), 'disconnected');
  assert.equal(n.pendingOldest, T0 + 10);
  assert.equal(n.lagSeconds(T0 + 1_010), 1);
  const { changes: c } = n.takePending();
  assert.deepEqual(c, [changes('www', ['a', 'z'], { trees: ['d'] })]);
});

test('a disconnect during the initial sync owes the full sync again, and the reconnection starts it over', () => {
  const n = new NodeTracker('n1', KEY, ['www'], 100);
  n.onReady('1.0.0', T0);
  const first = n.takePending();
  n.recordSent(1, first.changes, first.oldest, T0);
  n.onDisconnect(T0 + 10);
  assert.equal(n.state(T0 + 10), 'disconnected');
  n.onReady('1.0.0', T0 + 20);
  const again = n.takePending();
  assert.deepEqual(again.changes, [changes('www', [], { full: true })]);
  n.recordSent(5, again.changes, again.oldest, T0 + 20);
  assert.equal(n.state(T0 + 20), 'initial-sync');
  // A late result for the first attempt does not end the second one.
  n.onResult(1, true, [run('ok', { full: true })], T0 + 30);
  assert.equal(n.state(T0 + 30), 'initial-sync');
  n.onResult(5, true, [run('ok', { full: true })], T0 + 40);
  assert.equal(n.state(T0 + 40), 'idle');
});

test('lag is the age of the oldest change not applied, pending or in flight', () => {
  const n = synced();
  assert.equal(n.lagSeconds(T0 + 60_000), 0, 'nothing owed, no lag however long idle');
  n.recordSent(2, [changes('www', ['a'])], T0 + 1_000, T0 + 1_500);
  n.absorb([changes('www', ['b'])], T0 + 3_000);
  assert.equal(n.lagSeconds(T0 + 4_000), 3, 'measured from the change, not from the send');
  n.onResult(2, true, [run('ok')], T0 + 4_000);
  assert.equal(n.lagSeconds(T0 + 4_000), 1, 'the pending change is what is left');
  n.takePending();
  assert.equal(n.lagSeconds(T0 + 4_000), 0);
  assert.equal(n.lagSeconds(T0 - 10_000 + 1), 0, 'never negative');
});

test(`a connected node is lagging once its lag passes ${LAGGING_AFTER_S} s, and syncing up to it`, () => {
  const n = synced();
  const t = T0 + 100_000;
  n.recordSent(2, [changes('www', ['a'])], t, t);
  assert.equal(n.state(t + LAGGING_AFTER_S * 1000), 'syncing');
  assert.equal(n.state(t + LAGGING_AFTER_S * 1000 + 1), 'lagging');
  assert.equal(n.status(t + 45_500).lagSeconds, 45.5);
  n.onResult(2, true, [run('ok')], t + 46_000);
  assert.equal(n.state(t + 46_000), 'idle');
});

test('a reconciliation is work, not lag: a long one shows syncing, until an origin change joins it', () => {
  const n = synced();
  const t = T0 + 100_000;
  n.markFull('www', { lag: false });
  const { changes: c, oldest } = n.takePending();
  assert.equal(oldest, null, 'no origin change behind it');
  n.recordSent(2, c, oldest, t);
  assert.equal(n.lagSeconds(t + 600_000), 0);
  assert.equal(n.state(t + 600_000), 'syncing');
  // A real change while the full sync runs is lag again, measured from it.
  n.absorb([changes('www', ['a'])], t + 10_000);
  assert.equal(n.lagSeconds(t + 50_000), 40);
  assert.equal(n.state(t + 50_000), 'lagging');
  // A disconnect owes the reconciliation again, still without lag.
  n.takePending();
  n.onDisconnect(t + 60_000);
  assert.equal(n.lagSeconds(t + 60_000), 0);
  assert.equal(n.hasPending, true);
});

test('state precedence: error, then initial-sync, then lagging, then syncing', () => {
  const n = new NodeTracker('n1', KEY, ['www'], 100);
  n.onReady('1.0.0', T0);
  const p = n.takePending();
  n.recordSent(1, p.changes, p.oldest, T0);
  const late = T0 + (LAGGING_AFTER_S + 60) * 1000;
  assert.equal(n.state(late), 'initial-sync', 'a long initial sync is not lagging');
  n.onResult(1, false, [run('retry', { exit: 10, message: 'Error in socket I/O' })], late);
  assert.equal(n.state(late), 'error', 'a failed initial sync is an error');
  n.onResult(1, true, [run('ok')], late);
  n.recordSent(2, [changes('www', ['a'])], late, late);
  assert.equal(n.state(late + (LAGGING_AFTER_S + 1) * 1000), 'lagging');
  assert.equal(n.state(late + 1000), 'syncing');
  // Disconnected trumps everything the connection knew.
  n.onDisconnect(late + 2000);
  assert.equal(n.state(late + 2000), 'disconnected');
});

test('pending in the status counts owed and in-flight entries; a full path counts once', () => {
  const n = synced(['www', 'feeds']);
  n.recordSent(2, [changes('www', ['a', 'b'], { dirs: ['d'], trees: ['t'] })], T0, T0);
  n.recordSent(3, [changes('feeds', [], { full: true })], T0, T0);
  n.absorb([changes('www', ['c'])], T0);
  const s = n.status(T0);
  assert.equal(s.inFlight, 2);
  assert.equal(s.pending, 4 + 1 + 1);
});

test('progress is forgotten once a result or a disconnect arrives', () => {
  const n = synced();
  n.recordSent(2, [changes('www', ['a'])], T0, T0);
  n.onProgress('www', 40, T0);
  n.onResult(2, true, [run('ok')], T0 + 1);
  assert.equal(n.status(T0 + 1).progress, null);
  n.onProgress('www', 40, T0);
  n.onDisconnect(T0 + 2);
  assert.equal(n.status(T0 + 2).progress, null);
});

test('two long runs in a row that end with more owed pace the node; one that leaves nothing owed ends it', () => {
  const n = synced();
  const long = PACE_MIN_RUN_MS + 100;
  assert.equal(n.paced, false, 'a node that keeps up is not paced');
  n.recordSent(2, [changes('www', ['a'])], T0 + 10, T0 + 10);
  n.recordSent(3, [changes('www', ['a'])], T0 + 20, T0 + 20); // the same write's modify
  n.onResult(2, true, [run('ok', { durationMs: long })], T0 + 1_000);
  assert.equal(n.paced, false, 'one batch in flight behind a run is a straggler, not a busy origin');
  n.absorb([changes('www', ['b'])], T0 + 1_100); // arrived while 3 ran
  n.onResult(3, true, [run('ok', { durationMs: long })], T0 + 2_000);
  assert.equal(n.paced, true);
  assert.equal(n.restUntil, T0 + 2_000 + restAfter(long));
  assert.equal(n.status(T0 + 2_000).pacedUntil, new Date(n.restUntil).toISOString(), 'status shows it');
  n.recordSent(4, n.takePending().changes, T0 + 1_100, T0 + 3_000);
  n.recordSent(5, [changes('www', ['c'])], T0 + 3_100, T0 + 3_100);
  n.onResult(4, true, [run('ok', { durationMs: long })], T0 + 4_000);
  assert.equal(n.paced, true, 'batches in flight count as owed too');
  assert.equal(n.restUntil, T0 + 4_000 + restAfter(long));
  n.onResult(5, true, [run('ok', { durationMs: long })], T0 + 5_000);
  assert.equal(n.paced, false, 'caught up');
  assert.equal(n.restUntil, 0);
  assert.equal(n.status(T0 + 5_000).pacedUntil, null);
});

/** Batch `seq` is sent, more changes arrive while it runs, its run of `ms` ends, and what is owed goes out. */
function owedRun(n: NodeTracker, seq: number, ms: number): void {
  n.recordSent(seq, [changes('www', [`f${seq}`])], T0 + seq, T0 + seq);
  n.absorb([changes('www', ['more'])], T0 + seq);
  n.onResult(seq, true, [run('ok', { durationMs: ms })], T0 + 1_000 * seq);
  n.takePending();
}

test('quick runs are not paced, however many end with more owed', () => {
  const n = synced();
  for (let seq = 2; seq <= 6; seq++) {
    owedRun(n, seq, PACE_MIN_RUN_MS - 1);
    assert.equal(n.paced, false, `run ${seq}`);
  }
  assert.equal(n.owedStreak, 5);
});

test('a retryable failure ends pacing: new changes may be what the retry needs', () => {
  const n = synced();
  for (let seq = 2; seq <= 3; seq++) owedRun(n, seq, PACE_MIN_RUN_MS);
  assert.equal(n.paced, true);
  n.recordSent(4, [changes('www', ['big'])], T0 + 400, T0 + 400);
  n.onResult(4, false, [run('retry', { exit: 11, message: 'No space left on device' })], T0 + 500);
  assert.deepEqual(n.inflight.map((f) => f.seq), [4], 'still owed');
  assert.equal(n.paced, false);
  assert.equal(n.owedStreak, 0);
  assert.equal(n.restUntil, 0);
});

test('a disconnect ends pacing: the reconnect starts afresh', () => {
  const n = synced();
  for (let seq = 2; seq <= 3; seq++) owedRun(n, seq, PACE_MIN_RUN_MS);
  assert.equal(n.paced, true);
  n.onDisconnect(T0 + 500);
  assert.equal(n.paced, false);
  assert.equal(n.owedStreak, 0);
  assert.equal(n.restUntil, 0);
});

test('pacing: rests twice the run, at most PACE_MAX_MS, and ends when the origin goes quiet', () => {
  assert.equal(restAfter(0), 0);
  assert.equal(restAfter(-5), 0);
  assert.equal(restAfter(Number.NaN), 0);
  assert.equal(restAfter(400), 400 * PACE_FACTOR);
  assert.equal(restAfter(10 * PACE_MAX_MS), PACE_MAX_MS);
  assert.equal(sendableAt(T0 + 1_000, null), 0, 'an origin that never changed is quiet');
  assert.equal(sendableAt(T0 + 1_000, T0), T0 + QUIET_MS, 'quiet before the rest ends');
  assert.equal(sendableAt(T0 + 1_000, T0 + 990), T0 + 1_000, 'busy until the rest ends');
});

test("a tracker's time is its clock's: owed since it was made, and since a full sync was marked", () => {
  const clock = new ManualClock(T0);
  const n = new NodeTracker('n1', KEY, ['www'], 100, { clock });
  clock.advance(4_000);
  assert.equal(n.lagSeconds(clock.now()), 4);
  n.onReady('1.0.0', clock.now());
  const { changes: c, oldest } = n.takePending();
  n.recordSent(1, c, oldest, clock.now());
  n.onResult(1, true, [run('ok', { full: true })], clock.now());
  assert.equal(n.lagSeconds(clock.now()), 0);
  clock.advance(1_000);
  n.markFull('www');
  clock.advance(2_500);
  assert.equal(n.lagSeconds(clock.now()), 2.5, 'lag from when the full sync was marked');
  n.markFull('www', { lag: false });
  assert.equal(n.pendingOldest, T0 + 5_000, 'a reconciliation adds no lag');
});

test('progress, a rejected frame and a refused connection reach the status through methods', () => {
  const n = synced();
  n.onProgress('www', 55, T0 + 1);
  assert.deepEqual(n.status(T0 + 1).progress, { path: 'www', percent: 55 });
  assert.equal(n.lastSeen, T0 + 1);
  n.onReject('bad signature', T0 + 2);
  assert.deepEqual(n.lastError, { at: new Date(T0 + 2).toISOString(), path: null, exit: null, kind: 'rejected', message: 'bad signature' });
  assert.equal(n.state(T0 + 2), 'error');
  const at = new Date(T0 + 3).toISOString();
  n.onRefused(at, '10.0.0.9:4000', 'wrong key');
  assert.deepEqual(n.status(T0 + 3).lastRefusal, { at, address: '10.0.0.9:4000', reason: 'wrong key' });
});
