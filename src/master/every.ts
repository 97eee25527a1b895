// An interval on an injected clock: a timeout that sets the next one after
// each run, so the Clock stays small and a driven clock drives it too.
import type { Clock, Timer } from '../common/clock.js';

export interface Repeating {
  stop(): void;
}

/** Calls `fn` every `ms` until stopped; its timers never keep the process alive. */
export function every(clock: Clock, ms: number, fn: () => void): Repeating {
  let timer: Timer | null = null;
  let stopped = false;
  const arm = (): void => {
    timer = clock.setTimeout(() => {
      timer = null;
      if (stopped) return;
      arm(); // before fn: a throwing fn must not end the series
      fn();
    }, ms);
    timer.unref?.();
  };
  arm();
  return {
    stop: () => {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      timer = null;
    },
  };
}
