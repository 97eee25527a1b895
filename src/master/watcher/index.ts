// Entry point for the master: pick a backend, get a ready watcher.

import { startChokidar } from './chokidar.js';
import { startInotify } from './inotify.js';
import { startParcel } from './parcel.js';
import type { BackendName, WatchOptions, Watcher } from './types.js';

export type { BackendName, WatchEvent, WatchEventKind, WatchOptions, WatchProblem, WatchProblemKind, Watcher } from './types.js';

/** Resolves once the initial tree is watched; rejects if the root cannot be watched at all. */
export function startWatcher(backend: BackendName, opts: WatchOptions): Promise<Watcher> {
  switch (backend) {
    case 'inotify':
      return startInotify(opts);
    case 'chokidar':
      return startChokidar(opts);
    case 'parcel':
      return startParcel(opts);
    default:
      return Promise.reject(
        new Error(`unknown watcher backend "${String(backend)}"; use "inotify", "chokidar" or "parcel"`),
      );
  }
}
