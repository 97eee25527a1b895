// Waiting in tests, soak and bench: one sleep, one poll-until-true.

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `predicate` (every 10 ms, backing off to 200 ms) until it holds;
 * after `timeoutMs` throws, naming `what` and adding `explain()` (logs, state).
 */
export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  explain?: () => string | Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 10;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) {
      const detail = explain ? `\n${await explain()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(delay);
    delay = Math.min(200, delay * 2);
  }
}
