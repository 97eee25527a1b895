// When the rsync daemon is restarted: the same sequences test/rsyncd.test.ts
// sees from a stand-in daemon, in microseconds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RestartBackoff } from '../../src/master/rsyncd/restart-backoff.js';

test('restarts back off by doubling up to the cap', () => {
  const b = new RestartBackoff({ backoffInitialMs: 20, backoffMaxMs: 100, stableAfterMs: 60_000 });
  const waits: number[] = [];
  b.died(150); // the running daemon crashed, then every start fails at once
  for (let i = 0; i < 6; i++) {
    waits.push(b.nextMs);
    assert.equal(b.take(), waits[i]);
    b.died(0);
  }
  assert.deepEqual(waits, [20, 40, 80, 100, 100, 100]);
});

test('a daemon that stayed up long enough restarts after the initial delay again', () => {
  const b = new RestartBackoff({ backoffInitialMs: 20, backoffMaxMs: 1_000, stableAfterMs: 300 });
  const waits: number[] = [];
  for (const uptime of [150, 0, 0, 400]) {
    b.died(uptime);
    waits.push(b.take());
  }
  assert.deepEqual(waits, [20, 40, 80, 20]);
});

test('an uptime just short of stable keeps the backoff; reset() starts over', () => {
  const b = new RestartBackoff({ backoffInitialMs: 100, backoffMaxMs: 5_000, stableAfterMs: 30_000 });
  b.take();
  b.take();
  b.died(29_999);
  assert.equal(b.nextMs, 400);
  b.died(30_000);
  assert.equal(b.nextMs, 100);
  b.take();
  b.reset();
  assert.equal(b.nextMs, 100);
});
