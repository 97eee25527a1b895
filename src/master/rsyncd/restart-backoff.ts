// When to restart a dead rsync daemon: the wait doubles with every failure up
// to a cap, and starts over once a daemon has stayed up long enough.

export interface BackoffPolicy {
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** a daemon up this long is healthy again: the next restart waits backoffInitialMs */
  stableAfterMs: number;
}

export class RestartBackoff {
  private delay: number;

  constructor(private readonly p: BackoffPolicy) {
    this.delay = p.backoffInitialMs;
  }

  /** The wait before the next restart. */
  get nextMs(): number {
    return this.delay;
  }

  /** A fresh start: the next restart waits the initial delay. */
  reset(): void {
    this.delay = this.p.backoffInitialMs;
  }

  /** A daemon died after `uptimeMs`; a long enough run forgets earlier failures. */
  died(uptimeMs: number): void {
    if (uptimeMs >= this.p.stableAfterMs) this.reset();
  }

  /** A restart is scheduled: returns its wait, and doubles the one after it. */
  take(): number {
    const d = this.delay;
    this.delay = Math.min(d * 2, this.p.backoffMaxMs);
    return d;
  }
}
