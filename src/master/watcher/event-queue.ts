// Hands events to the consumer in the order the backend produced them, one
// array per event-loop turn. Some events need an lstat before they are
// complete; they enter the queue as promises at the position they arrived, so
// a slow lstat delays later events instead of being overtaken by them.

import type { WatchEvent } from './types.js';

/** null: the event turned out to be irrelevant (vanished, excluded). */
export type QueuedEvent = WatchEvent | null | Promise<WatchEvent | null>;

export class EventQueue {
  private pending: QueuedEvent[] = [];
  private scheduled = false;
  private inFlight = 0;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly deliver: (events: WatchEvent[]) => void) {}

  /** A promise that rejects counts as null: lstat failures mean "gone". */
  push(event: QueuedEvent): void {
    if (this.closed || event === null) return;
    this.pending.push(event);
    if (!this.scheduled) {
      this.scheduled = true;
      // setImmediate, not a microtask: backends emit from many separate I/O
      // callbacks per loop turn, and one array per turn is the useful batch.
      setImmediate(this.flush);
    }
  }

  close(): void {
    this.closed = true;
    this.pending = [];
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (this.closed || batch.length === 0) return;
    if (this.inFlight === 0 && batch.every((e) => !(e instanceof Promise))) {
      this.hand(batch as (WatchEvent | null)[]);
      return;
    }
    this.inFlight++;
    this.chain = this.chain
      .then(() => Promise.all(batch.map((e) => Promise.resolve(e).catch(() => null))))
      .then((events) => this.hand(events))
      .finally(() => {
        this.inFlight--;
      });
  };

  private hand(events: (WatchEvent | null)[]): void {
    if (this.closed) return;
    const ready = events.filter((e): e is WatchEvent => e !== null);
    if (ready.length === 0) return;
    try {
      this.deliver(ready);
    } catch (err) {
      // The consumer's bug, not the watcher's: make it loud, keep the queue going.
      process.nextTick(() => {
        throw err;
      });
    }
  }
}
