// Turns backend failures into WatchProblems with advice, and keeps the noisy
// ones from flooding: chokidar raises one ENOSPC per path it fails to watch,
// which on a large tree is tens of thousands of identical errors.

import { readFileSync } from 'node:fs';
import type { BackendName, WatchProblem } from './types.js';

const WATCHES_SYSCTL = '/proc/sys/fs/inotify/max_user_watches';
const LIMIT_TEXT = /ENOSPC|No space left on device|limit for number of file watchers/i;
const OVERFLOW_TEXT = /overflow|events (were|have been) dropped/i;

export function isWatchLimitError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e?.code === 'ENOSPC') return true;
  return typeof e?.message === 'string' && LIMIT_TEXT.test(e.message);
}

function currentWatchLimit(): number | undefined {
  try {
    const n = Number(readFileSync(WATCHES_SYSCTL, 'utf8').trim());
    return Number.isFinite(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function limitMessage(backend: BackendName, path: string | undefined): string {
  const now = currentWatchLimit();
  const suggest = Math.max(524288, (now ?? 0) * 4);
  const perWhat = backend === 'chokidar' ? 'one per file and per directory' : 'one per directory';
  return (
    `inotify watch limit reached${path ? ` while watching ${path}` : ''}` +
    ` (fs.inotify.max_user_watches=${now ?? 'unknown'}, shared by all processes of this user;` +
    ` the ${backend} backend needs ${perWhat}). Changes under unwatched directories are only picked up by reconciliation.` +
    ` Raise the limit with "sysctl -w fs.inotify.max_user_watches=${suggest}", make it permanent with a drop-in` +
    ` /etc/sysctl.d/90-inosync.conf containing "fs.inotify.max_user_watches=${suggest}", then restart the master.`
  );
}

export class ProblemReporter {
  private limitReported = false;
  private rootReported = false;
  private closed = false;

  constructor(
    private readonly backend: BackendName,
    private readonly sink: (p: WatchProblem) => void,
  ) {}

  limit(path?: string): void {
    if (this.limitReported) return;
    this.limitReported = true;
    this.emit({ kind: 'limit', message: limitMessage(this.backend, path), ...(path ? { path } : {}) });
  }

  /** Once: after the root is gone nothing else this watcher says matters. */
  root(root: string, what: string): void {
    if (this.rootReported) return;
    this.rootReported = true;
    this.emit({
      kind: 'root',
      path: root,
      message:
        `watched root ${root} ${what}; no further changes under it are seen.` +
        ` Check the directory or mount, then restart the master (reconciliation resyncs everything).`,
    });
  }

  overflow(message: string, path?: string): void {
    this.emit({
      kind: 'overflow',
      message: `${message}; some changes were not reported, so the whole path is synced. If this repeats, raise fs.inotify.max_queued_events (see deploy/sysctl/90-inosync.conf).`,
      ...(path ? { path } : {}),
    });
  }

  error(message: string, path?: string): void {
    this.emit({ kind: 'error', message, ...(path ? { path } : {}) });
  }

  /** Classifies an error a backend raised while watching `path`. */
  fromError(err: unknown, context: string, path?: string): void {
    if (isWatchLimitError(err)) return this.limit(path);
    const text = err instanceof Error ? err.message : String(err);
    if (OVERFLOW_TEXT.test(text)) return this.overflow(`${context}: ${text}`, path);
    this.error(`${context}: ${text}`, path);
  }

  /**
   * Wraps a callback a backend library calls: an exception escaping into
   * parcel is fatal to the process, one escaping into chokidar unwinds it.
   */
  guard<A extends unknown[]>(context: string, fn: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        fn(...args);
      } catch (err) {
        this.fromError(err, `${context} failed (a bug in inosync; please report it)`);
      }
    };
  }

  close(): void {
    this.closed = true;
  }

  private emit(p: WatchProblem): void {
    if (this.closed) return;
    // A throwing consumer is a bug in the consumer; surfacing it as an
    // uncaught exception keeps it visible without unwinding backend code.
    try {
      this.sink(p);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
  }
}
