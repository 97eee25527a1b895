// A clock that moves only when told: timing logic tested in microseconds.
import type { Clock, Timer } from '../src/common/clock.js';

interface Pending { at: number; seq: number; fn: () => void; cancelled: boolean }

export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly pending: Pending[] = [];
  constructor(start = 1_000_000) { this.t = start; }
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): Timer {
    const p: Pending = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.pending.push(p);
    return p as unknown as Timer;
  }
  clearTimeout(t: Timer): void { (t as unknown as Pending).cancelled = true; }
  /** Moves time forward by `ms`, running every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = this.pending.filter((p) => !p.cancelled && p.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.pending.splice(this.pending.indexOf(due), 1);
      this.t = Math.max(this.t, due.at);
      due.fn();
    }
    this.t = end;
  }
  /** Timers still waiting. */
  get waiting(): number { return this.pending.filter((p) => !p.cancelled).length; }
}
