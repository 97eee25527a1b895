// The master's budget for an authenticated agent's frames, as pure arithmetic
// on a driven `now`: what it lets through, what it stops, and how it refills.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { credit, frameCost, fullBudget, spend, type Budget, type FrameRate } from '../../src/master/frame-budget.js';
import { AGENT_FRAME_RATE } from '../../src/protocol/limits.js';

const RATE: FrameRate = { perSecond: 100, burst: 10, unitBytes: 1000, perBatch: 2 };

/** Spends one frame of `bytes` at each time in `at`; how many got through before the first refusal. */
function served(rate: FrameRate, at: number[], bytes = 100, start = 0): number {
  let b: Budget | null = fullBudget(rate, start);
  let n = 0;
  for (const now of at) {
    b = spend(b, rate, now, bytes);
    if (b === null) return n;
    n++;
  }
  return n;
}

const times = (n: number, every: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i * every);

test('frame cost: one unit per started unitBytes, at least one', () => {
  for (const [bytes, cost] of [[0, 1], [1, 1], [1000, 1], [1001, 2], [2000, 2], [256 * 1024, 263]] as const) {
    assert.equal(frameCost(RATE, bytes), cost, `${bytes} bytes`);
  }
});

test('what the budget serves', () => {
  const cases: { name: string; at: number[]; bytes?: number; served: number }[] = [
    { name: 'a burst, all at once', at: times(10, 0), served: 10 },
    { name: 'one over the burst', at: times(11, 0), served: 10 },
    { name: 'large frames spend more', at: times(10, 0), bytes: 2500, served: 3 },
    { name: 'the sustained rate, for ever', at: times(10_000, 10), served: 10_000 },
    { name: 'twice the rate: the burst runs out', at: times(10_000, 5), served: 19 },
    { name: 'a long pause refills no more than the burst', at: [...times(10, 0), ...times(11, 0, 3_600_000)], served: 20 },
    { name: 'a clock stepping back regains nothing', at: [...times(10, 0, 1_000), ...times(1, 0, 0)], served: 10 },
  ];
  for (const c of cases) assert.equal(served(RATE, c.at, c.bytes), c.served, c.name);
});

test('a batch sent adds room for its answers, up to the burst', () => {
  const noTime: FrameRate = { ...RATE, perSecond: 0 };
  let b: Budget | null = spend(fullBudget(noTime, 0), noTime, 0, 100);
  for (let i = 0; i < 9; i++) b = spend(b!, noTime, 0, 100);
  assert.equal(spend(b!, noTime, 0, 100), null, 'spent');
  b = credit(b!, noTime);
  assert.ok((b = spend(b, noTime, 0, 100)) && (b = spend(b, noTime, 0, 100)), 'an ack and a result');
  assert.equal(spend(b, noTime, 0, 100), null);
  assert.equal(credit(credit(fullBudget(noTime, 0), noTime), noTime).units, noTime.burst);
});

test('the default budget holds ten times a real agent at its busiest, for an hour', () => {
  // Busiest real pace with the default delay (50 ms): an ack and a result per
  // batch, a batch every 50 ms, and progress once a second for each of ten
  // paths. Ten times that, in frames of a few hundred bytes.
  const r: FrameRate = AGENT_FRAME_RATE;
  let b: Budget | null = fullBudget(r, 0);
  for (let t = 0; t < 3_600_000 && b; t += 50) {
    b = credit(b, r);
    for (let i = 0; i < 10 * (2 + 10 / 20) && b; i++) b = spend(b, r, t, 300);
  }
  assert.ok(b, 'never refused');
  // And a flood is stopped: twice the rate runs the burst out within seconds.
  assert.ok(served(r, times(100_000, 1_000 / (2 * r.perSecond))) < 2 * r.burst + 1);
});
