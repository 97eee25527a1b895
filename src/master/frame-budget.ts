// How much an authenticated agent may make the master verify: a token bucket,
// checked before a frame's signature, so a flood (a stolen key, a looping
// agent) costs the master the price of a comparison per frame. Pure: the
// caller passes `now`.

export interface FrameRate {
  /** units regained per second */
  perSecond: number;
  /** units held at most, and at the start */
  burst: number;
  /** bytes in one unit: a frame costs one unit per started `unitBytes` (verifying and decoding grow with size) */
  unitBytes: number;
  /** units added for each batch sent to the agent: its ack and its result */
  perBatch: number;
}

export interface Budget {
  units: number;
  /** when `units` was last brought up to date */
  at: number;
}

export function fullBudget(rate: FrameRate, now: number): Budget {
  return { units: rate.burst, at: now };
}

/** What a frame of `bytes` costs. */
export function frameCost(rate: FrameRate, bytes: number): number {
  return Math.max(1, Math.ceil(bytes / rate.unitBytes));
}

/** The budget after a frame of `bytes` at `now`, or null when it is spent. */
export function spend(b: Budget, rate: FrameRate, now: number, bytes: number): Budget | null {
  // A clock that steps back regains nothing and takes nothing.
  const at = Math.max(b.at, now);
  const units = Math.min(rate.burst, b.units + ((at - b.at) * rate.perSecond) / 1000) - frameCost(rate, bytes);
  return units < 0 ? null : { units, at };
}

/** The budget after the master sent the agent a batch: room for what it answers. */
export function credit(b: Budget, rate: FrameRate): Budget {
  return { units: Math.min(rate.burst, b.units + rate.perBatch), at: b.at };
}
