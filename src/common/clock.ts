// src/common/clock.ts
// Time as a dependency: the real one by default, a driven one in tests.
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(t: Timer): void;
}

/** What a timer handle must allow: unref'd timers never keep the process alive. */
export interface Timer {
  unref?(): unknown;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};
