// The contract between a filesystem watcher backend and the master. Backends
// report what the kernel told them, in order, without merging anything: the
// consumer coalesces. Neither inotify backend can see everything (queue
// overflow is invisible, watch limits leave holes), so the master's periodic
// reconciliation is what makes the mirror converge; events only make it fast.

/**
 * A rename arrives as `delete` of the old path plus `create` of the new one.
 * `attrib` exists for backends that can tell metadata changes apart; the two
 * inotify backends here cannot and report chmod/chown/utimes as `modify`.
 */
export type WatchEventKind = 'create' | 'modify' | 'delete' | 'attrib';

export interface WatchEvent {
  kind: WatchEventKind;
  /** relative to the root, '/'-separated, never '' */
  path: string;
  /**
   * True for directories (symlinks are never directories). For `delete` the
   * type may be unknown and is then reported as false: the consumer must
   * treat a deleted path as possibly a whole tree.
   */
  isDir: boolean;
}

export type WatchProblemKind =
  | 'limit' // ENOSPC: inotify watch limit
  | 'overflow' // events may have been lost
  | 'root' // root vanished/unreadable
  | 'error';

export interface WatchProblem {
  kind: WatchProblemKind;
  /** what happened, which path, what to do */
  message: string;
  path?: string;
}

export interface WatchOptions {
  /** absolute directory */
  root: string;
  /** excluded paths: never watched, never reported; `rel` is never '' */
  ignore: (rel: string, isDir: boolean) => boolean;
  /** called with events in order; what arrives in the same tick comes as one array */
  onEvents: (events: WatchEvent[]) => void;
  onProblem: (p: WatchProblem) => void;
}

export interface Watcher {
  close(): Promise<void>;
  readonly backend: string;
  /** `watches`: inotify watches held by this whole process, when /proc tells */
  stats(): { watches?: number };
}

export type BackendName = 'inotify' | 'chokidar' | 'parcel';
