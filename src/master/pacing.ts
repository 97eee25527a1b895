// Pacing: when a node that runs behind a busy origin gets its next batch.
//
// While changes keep coming, a node whose last two runs ended with more owed
// (node-tracker.ts: one is often just a write's second batch), the last one
// taking at least PACE_MIN_RUN_MS, rests for PACE_FACTOR times that run's
// duration (at most PACE_MAX_MS) before the master sends it the rest as one
// batch. Its rsync then runs at most a third
// of the time and every run carries more: a flood becomes a handful of runs
// instead of one per second for as long as it lasts. The rest ends as soon as
// the origin has been quiet for QUIET_MS, so the last changes of a burst leave
// at once, and a node that keeps up (nothing owed when its run ends) is never
// paced at all: a lone change still leaves at once.
//
// The master decides rather than the agent because only the master sees the
// origin go quiet; for the same reason a paced node is sent one batch at a
// time (dispatcher.ts), or it would find the next batch waiting when its run
// ends and start again at once.

export const PACE_FACTOR = 2;
/**
 * Runs shorter than this are not paced: back to back they cost little, and a
 * few quick edits in a row (a write's create and modify, then the next file)
 * must keep sharing the batches of the caught-up nodes. A flood's runs take
 * a second and more.
 */
export const PACE_MIN_RUN_MS = 500;
export const PACE_MAX_MS = 5_000;
export const QUIET_MS = 150;

/** How long a node whose run took `runMs` rests before its next batch while the origin is busy. */
export function restAfter(runMs: number): number {
  if (!Number.isFinite(runMs) || runMs <= 0) return 0;
  return Math.min(PACE_MAX_MS, PACE_FACTOR * runMs);
}

/**
 * The earliest time a paced node may be sent what it is owed: when its rest
 * ends, or when the origin has been quiet for QUIET_MS, whichever comes first.
 * `lastEvent` null: the origin has not changed since the master started.
 */
export function sendableAt(restUntil: number, lastEvent: number | null): number {
  return lastEvent === null ? 0 : Math.min(restUntil, lastEvent + QUIET_MS);
}
