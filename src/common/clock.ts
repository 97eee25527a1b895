// Time as a dependency: the real one by default, a driven one in tests.
export interface Clock {
  now(): number;
  /** `ms` <= 0: after the I/O callbacks of this turn of the event loop */
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(t: Timer): void;
}

/** What a timer handle must allow: unref'd timers never keep the process alive. */
export interface Timer {
  unref?(): unknown;
}

const immediates = new WeakSet<object>();

export const realClock: Clock = {
  now: () => Date.now(),
  // 0 ms as setImmediate, not a 1 ms timer: an idle master sends a lone
  // change at once, after the rest of the watcher's events of this turn.
  setTimeout: (fn, ms) => {
    if (ms > 0) return setTimeout(fn, ms);
    const i = setImmediate(fn);
    immediates.add(i);
    return i;
  },
  clearTimeout: (t) => {
    if (immediates.has(t)) clearImmediate(t as NodeJS.Immediate);
    else clearTimeout(t as NodeJS.Timeout);
  },
};
