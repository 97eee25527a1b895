// What goes to which node, and when. Pure: the master hands it `now` and a
// view of every node, carries out the decisions, and asks again when told.
//
// A fresh batch is signed once and shared by every node that has room and is
// owed nothing else; the others absorb it into what they are owed, which
// leaves later as one merged catch-up batch per node. A paced node (pacing.ts)
// gets its catch-up only once its batch is applied and its rest is over or the
// origin has gone quiet.
import { sendableAt } from './pacing.js';

/**
 * Batches a node may have unapplied before its changes are merged instead of
 * sent. Room for several behind a running rsync lets the agent merge them into
 * its next run; with 2, only one ever queued there, the agent started it the
 * moment it reported the previous one, and every batch cost its own run.
 */
export const WINDOW = 8;
/** A node whose socket holds more than this unsent is treated as busy. */
export const MAX_BUFFERED = 4 * 1024 * 1024;

/** What the dispatcher needs to know of one node. */
export interface NodeView {
  name: string;
  /** authenticated, with an open session */
  ready: boolean;
  /** bytes its socket has not sent yet */
  buffered: number;
  /** batches sent and not yet applied */
  inflight: number;
  /** owed changes not sent yet */
  hasPending: boolean;
  /** ms epoch its rest ends; 0: not paced */
  restUntil: number;
}

/** A node can take a batch now: connected, window not full, socket not backed up. */
export function hasRoom(n: NodeView): boolean {
  return n.ready && n.inflight < WINDOW && n.buffered < MAX_BUFFERED;
}

export interface DispatchInput {
  now: number;
  nodes: readonly NodeView[];
  /** whether a fresh batch from the origin is ready to go out */
  fresh: boolean;
  /** ms epoch of the last change admitted on the origin; null: none since start */
  lastEvent: number | null;
}

export interface Dispatch {
  /** get the fresh batch, one signed batch for all of them */
  share: string[];
  /** keep the fresh batch among what they are owed */
  absorb: string[];
  /** each sent what it is owed, as one batch of its own */
  catchUp: string[];
  /** when a paced node may be sent its catch-up: look again then; null: nothing to wait for */
  lookAgainAt: number | null;
}

export function dispatch({ now, nodes, fresh, lastEvent }: DispatchInput): Dispatch {
  const out: Dispatch = { share: [], absorb: [], catchUp: [], lookAgainAt: null };
  for (const n of nodes) {
    let owed = n.hasPending;
    if (fresh) {
      // A node owed something gets the fresh batch merged into its catch-up, in order.
      if (hasRoom(n) && n.restUntil === 0 && !n.hasPending) {
        out.share.push(n.name);
        continue; // owed nothing more, so no catch-up
      }
      out.absorb.push(n.name);
      owed = true;
    }
    if (!owed || !hasRoom(n)) continue;
    if (n.restUntil !== 0) {
      // One batch at a time, or it would find the next waiting when its run ends; its result looks again.
      if (n.inflight > 0) continue;
      const at = sendableAt(n.restUntil, lastEvent);
      if (at > now) {
        out.lookAgainAt = Math.min(out.lookAgainAt ?? Infinity, at);
        continue;
      }
    }
    out.catchUp.push(n.name);
  }
  return out;
}

/**
 * How long to wait before flushing the origin's changes: an idle master sends
 * at once (0), a busy one at most one batch per `delayMs`.
 */
export function flushWait(now: number, lastFlush: number, delayMs: number): number {
  return Math.max(0, lastFlush + delayMs - now);
}
