// The rsync daemon runs in a process group of its own, with a child per
// connection: it is signalled, and waited for, as a group.
import { setTimeout as sleep } from 'node:timers/promises';
import { liveGroupMembers } from './proc-scan.js';

const POLL_MS = 50;

export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  if (pgid <= 0) return;
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is already gone
  }
}

/**
 * True once no live process is left in the group. Exited children of a dead
 * daemon stay zombies until init reaps them, and some container inits never
 * do; those hold no resources, so /proc is read to skip them.
 */
export async function groupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const live = liveGroupMembers(pgid) ?? (groupSignalable(pgid) ? 1 : 0);
    if (live === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(POLL_MS);
  }
}

function groupSignalable(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** How a process ended, for messages: "exited with code 3", "was killed by SIGKILL". */
export function describeExit(e: { code: number | null; signal: NodeJS.Signals | null }): string {
  return e.signal !== null ? `was killed by ${e.signal}` : `exited with code ${String(e.code)}`;
}
