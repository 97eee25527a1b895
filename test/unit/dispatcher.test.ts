// The dispatcher on its own: who shares a fresh batch, who absorbs it, who is
// sent a catch-up, and when a paced node is looked at again. Pure, so every
// case is one line of input and the decision it must produce.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dispatch, flushWait, hasRoom, MAX_BUFFERED, WINDOW, type Dispatch, type DispatchInput, type NodeView } from '../../src/master/dispatcher.js';
import { QUIET_MS } from '../../src/master/pacing.js';

const NOW = 1_700_000_000_000;

/** A connected node with room, owed nothing, not paced. */
function node(name: string, over: Partial<NodeView> = {}): NodeView {
  return { name, ready: true, buffered: 0, inflight: 0, hasPending: false, restUntil: 0, ...over };
}

const none: Dispatch = { share: [], absorb: [], catchUp: [], lookAgainAt: null };

describe('hasRoom: one rule for whether a node can take a batch now', () => {
  const cases: Array<[string, Partial<NodeView>, boolean]> = [
    ['connected, idle', {}, true],
    ['not ready (handshake, or no session)', { ready: false }, false],
    ['window nearly full', { inflight: WINDOW - 1 }, true],
    ['window full', { inflight: WINDOW }, false],
    ['socket backed up just under the bound', { buffered: MAX_BUFFERED - 1 }, true],
    ['socket backed up to the bound', { buffered: MAX_BUFFERED }, false],
    ['owed something: room is about the window, not the debt', { hasPending: true }, true],
    ['paced: room is about the window, not the rest', { restUntil: NOW + 1_000 }, true],
  ];
  for (const [what, over, room] of cases) it(what, () => assert.equal(hasRoom(node('n', over)), room));
});

describe('dispatch', () => {
  const cases: Array<{ what: string; input: Omit<DispatchInput, 'now'> & { now?: number }; want: Partial<Dispatch> }> = [
    { what: 'nothing fresh, nothing owed: nothing to do', input: { nodes: [node('a'), node('b')], fresh: false, lastEvent: null }, want: {} },
    { what: 'a fresh batch is shared by every node with room', input: { nodes: [node('a'), node('b')], fresh: true, lastEvent: NOW }, want: { share: ['a', 'b'] } },
    {
      what: 'a disconnected node absorbs it',
      input: { nodes: [node('a'), node('b', { ready: false })], fresh: true, lastEvent: NOW },
      want: { share: ['a'], absorb: ['b'] },
    },
    {
      what: 'a full window absorbs it and gets no catch-up',
      input: { nodes: [node('a'), node('b', { inflight: WINDOW })], fresh: true, lastEvent: NOW },
      want: { share: ['a'], absorb: ['b'] },
    },
    {
      what: 'a backed-up socket absorbs it and gets no catch-up',
      input: { nodes: [node('a'), node('b', { buffered: MAX_BUFFERED })], fresh: true, lastEvent: NOW },
      want: { share: ['a'], absorb: ['b'] },
    },
    {
      what: 'a node owed something absorbs it and gets it all as one catch-up, in order',
      input: { nodes: [node('a'), node('b', { hasPending: true, inflight: 3 })], fresh: true, lastEvent: NOW },
      want: { share: ['a'], absorb: ['b'], catchUp: ['b'] },
    },
    {
      what: 'nothing fresh: a node owed something with room gets its catch-up',
      input: { nodes: [node('a', { hasPending: true }), node('b', { hasPending: true, inflight: WINDOW }), node('c')], fresh: false, lastEvent: null },
      want: { catchUp: ['a'] },
    },
    {
      what: 'a paced node absorbs a fresh batch even with room, and rests while the origin is busy',
      input: { nodes: [node('a'), node('p', { restUntil: NOW + 900 })], fresh: true, lastEvent: NOW },
      want: { share: ['a'], absorb: ['p'], lookAgainAt: NOW + QUIET_MS },
    },
    {
      what: 'a paced node with a batch in flight waits for its result, not a timer',
      input: { nodes: [node('p', { restUntil: NOW - 1, inflight: 1, hasPending: true })], fresh: false, lastEvent: NOW },
      want: {},
    },
    {
      what: 'a paced node whose rest is over gets its catch-up',
      input: { nodes: [node('p', { restUntil: NOW, hasPending: true })], fresh: false, lastEvent: NOW - 10 },
      want: { catchUp: ['p'] },
    },
    {
      what: 'a paced node behind an origin quiet for QUIET_MS gets it before its rest ends',
      input: { nodes: [node('p', { restUntil: NOW + 4_000, hasPending: true })], fresh: false, lastEvent: NOW - QUIET_MS },
      want: { catchUp: ['p'] },
    },
    {
      what: 'a paced node behind a busy origin: look again when the rest ends, if that comes first',
      input: { nodes: [node('p', { restUntil: NOW + 100, hasPending: true })], fresh: false, lastEvent: NOW - 10 },
      want: { lookAgainAt: NOW + 100 },
    },
    {
      what: 'two paced nodes: look again at the earlier time',
      input: { nodes: [node('p', { restUntil: NOW + 300, hasPending: true }), node('q', { restUntil: NOW + 80, hasPending: true })], fresh: false, lastEvent: NOW },
      want: { lookAgainAt: NOW + 80 },
    },
    {
      what: 'an origin that never changed is quiet: a paced node owed a reconciliation goes at once',
      input: { nodes: [node('p', { restUntil: NOW + 3_000, hasPending: true })], fresh: false, lastEvent: null },
      want: { catchUp: ['p'] },
    },
    {
      what: 'a paced node that is not connected is neither sent nor waited for',
      input: { nodes: [node('p', { ready: false, restUntil: NOW + 300, hasPending: true })], fresh: false, lastEvent: NOW },
      want: {},
    },
  ];
  for (const c of cases) {
    it(c.what, () => {
      assert.deepEqual(dispatch({ now: NOW, ...c.input }), { ...none, ...c.want });
    });
  }

  it('a node left out of a full window is shared with again once it has room and owes nothing', () => {
    // The sequence the master lives through for a node whose runs are held back.
    let b = node('b');
    const sharedWithB: boolean[] = [];
    for (let round = 0; round < WINDOW + 2; round++) {
      const d = dispatch({ now: NOW + round, nodes: [node('a'), b], fresh: true, lastEvent: NOW + round });
      sharedWithB.push(d.share.includes('b'));
      if (d.share.includes('b')) b = { ...b, inflight: b.inflight + 1 };
      if (d.absorb.includes('b')) b = { ...b, hasPending: true };
      assert.equal(d.catchUp.length, 0, `round ${round}: no catch-up while the window is full`);
    }
    assert.deepEqual(sharedWithB, [...Array(WINDOW).fill(true), false, false]);
    // Its run ends, the window empties: one catch-up for all it missed.
    b = { ...b, inflight: 0 };
    assert.deepEqual(dispatch({ now: NOW + 100, nodes: [b], fresh: false, lastEvent: NOW }), { ...none, catchUp: ['b'] });
    // Caught up, it shares the next fresh batch again.
    b = { ...b, hasPending: false, inflight: 1 };
    assert.deepEqual(dispatch({ now: NOW + 200, nodes: [node('a'), b], fresh: true, lastEvent: NOW + 200 }).share, ['a', 'b']);
  });
});

describe('flushWait: an idle master sends at once, a busy one at most once per delay', () => {
  const cases: Array<[string, number, number, number, number]> = [
    ['never flushed', NOW, 0, 100, 0],
    ['last flush longer ago than the delay', NOW, NOW - 500, 100, 0],
    ['last flush exactly one delay ago', NOW, NOW - 100, 100, 0],
    ['last flush within the delay', NOW, NOW - 30, 100, 70],
    ['a delay of 0 never waits', NOW, NOW, 0, 0],
  ];
  for (const [what, now, last, delay, wait] of cases) it(what, () => assert.equal(flushWait(now, last, delay), wait));
});
