// @parcel/watcher gives up silently when it cannot watch a directory created
// after start (ENOSPC): the directory is reported, its contents never are.
// Trying to add one watch ourselves, through libuv, tells whether the user's
// watch budget is exhausted; the watch is dropped again at once.

import { watch } from 'node:fs';
import { isWatchLimitError } from './problems.js';

export function watchLimitReached(dir: string): boolean {
  try {
    watch(dir, { persistent: false }).close();
    return false;
  } catch (err) {
    return isWatchLimitError(err);
  }
}
