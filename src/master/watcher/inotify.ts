// The default backend: one inotify watch per directory (node:fs.watch, which
// is libuv's inotify on Linux), as lsyncd does. Nothing is debounced, nothing
// is watched per file, nothing is crawled twice: 100k files in 5k directories
// cost 5k watches, and an event reaches the master after one lstat.
//
// Events only say which entry of a watched directory changed ('rename' for
// create, delete and both ends of a move; 'change' for content and
// attributes). Each is turned into a WatchEvent by an lstat of the path, in
// a lane per path so that a delete and a re-create of the same name are seen
// in order. A directory that appears (created, moved in, or replaced) gets
// its whole subtree watched before it is reported as a tree: everything
// changed below it before its watches existed is then covered by the sync of
// the tree, and everything after by the new watches.
//
// Queue overflow: libuv drops IN_Q_OVERFLOW without a word, but it drains
// the whole inotify queue in one go, so an overflowed queue shows as one loop
// turn delivering fs.inotify.max_queued_events events (the kernel keeps that
// many, the last being the overflow notice). That is reported as an
// 'overflow' problem, on which the master falls back to a full sync. A
// writer faster than the reader can trip it without a real overflow: a full
// sync too many is cheap, a lost change is not.
//
// What it cannot report: anything below a directory it could not watch
// (ENOSPC) after the 'limit' problem; the master's periodic reconciliation
// is the safety net.

import { type FSWatcher, lstatSync, readFileSync, watch } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { Limiter } from './concurrency.js';
import { EventQueue } from './event-queue.js';
import { Exclusion } from './exclude.js';
import { countInotifyWatches } from './inotify-watches.js';
import { PathLanes } from './lanes.js';
import { isWatchLimitError, ProblemReporter } from './problems.js';
import { guardWatchedRoot } from '../root-health.js';
import { absoluteOf, resolveRoot, type Root } from './root.js';
import { walk } from './walk.js';
import type { WatchEvent, WatchOptions, Watcher } from './types.js';

interface DirWatch {
  w: FSWatcher;
  /** the directory this watch was made for: a new one under the same name needs a new watch */
  ino: number;
}

export async function startInotify(opts: WatchOptions): Promise<Watcher> {
  const root = await resolveRoot(opts.root);
  const problems = new ProblemReporter('inotify', opts.onProblem);
  const ex = new Exclusion(opts.ignore, problems);
  const queue = new EventQueue(opts.onEvents);
  const tree = new DirWatches(root, ex, problems, queue);

  await tree.start();
  const guard = guardWatchedRoot(root, (what) => problems.root(opts.root, what));
  guard.start();

  return {
    backend: 'inotify',
    stats: () => {
      const watches = countInotifyWatches();
      return watches === undefined ? {} : { watches };
    },
    close: async () => {
      guard.stop();
      queue.close();
      tree.close();
      problems.close();
    },
  };
}

const QUEUE_SYSCTL = '/proc/sys/fs/inotify/max_queued_events';

/** The kernel's default when /proc does not tell. */
function maxQueuedEvents(): number {
  try {
    const n = Number(readFileSync(QUEUE_SYSCTL, 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : 16384;
  } catch {
    return 16384;
  }
}

class DirWatches {
  /** by root-relative path, '' for the root */
  private readonly dirs = new Map<string, DirWatch>();
  private readonly lanes = new PathLanes<WatchEvent>();
  private readonly stats = new Limiter(64);
  private closed = false;
  /** inotify events delivered in this loop turn, to see a drained full queue */
  private turnEvents = 0;
  private readonly queueMax = maxQueuedEvents();

  constructor(
    private readonly root: Root,
    private readonly ex: Exclusion,
    private readonly problems: ProblemReporter,
    private readonly queue: EventQueue,
  ) {}

  async start(): Promise<void> {
    if (!this.watchDir('', this.root.ino)) {
      this.problems.close();
      throw new Error(`cannot watch ${this.root.configured}: see the problem reported`);
    }
    await this.watchBelow('');
  }

  close(): void {
    this.closed = true;
    for (const d of this.dirs.values()) d.w.close();
    this.dirs.clear();
  }

  private abs(rel: string): string {
    return rel === '' ? this.root.real : absoluteOf(this.root.real, rel);
  }

  /** Watches one directory unless it is watched already; false if it cannot be. */
  private watchDir(rel: string, ino: number): boolean {
    const had = this.dirs.get(rel);
    if (had?.ino === ino) return true;
    if (had) this.retire(rel);
    const abs = this.abs(rel);
    let w: FSWatcher;
    try {
      w = watch(abs, { persistent: false });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Gone or replaced by a file since it was seen: its own event tells.
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      this.problems.fromError(err, isWatchLimitError(err) ? 'watching' : `cannot watch ${abs}; changes below it are only picked up by reconciliation`, abs);
      return false;
    }
    w.on('change', this.problems.guard('handling an inotify event', (type: string, name: string | Buffer | null) => this.onEvent(rel, type, name)));
    w.on('error', (err) => {
      // libuv gave up on this watch: whatever is below is unwatched from now on.
      this.problems.fromError(err, `the watch on ${abs} failed; changes below it are only picked up by reconciliation`, abs);
      if (this.dirs.get(rel)?.w === w) this.retire(rel);
    });
    this.dirs.set(rel, { w, ino });
    return true;
  }

  /**
   * Watches every directory below `rel` (itself already watched). Each one
   * is watched before it is read, so an entry made meanwhile is either seen
   * by the read or reported by the watch.
   */
  private async watchBelow(rel: string): Promise<void> {
    await walk(this.root.real, rel, this.ex, {
      stop: () => this.closed,
      entry: (e) => {
        if (!e.isDir) return;
        let st: Stats;
        try {
          st = lstatSync(this.abs(e.rel));
        } catch {
          return; // gone already: its delete event follows
        }
        if (st.isDirectory()) this.watchDir(e.rel, st.ino);
      },
      unreadable: (r, err) => this.problems.error(`cannot read ${this.abs(r)} (${err.code ?? err.message}); its content is not mirrored until it is readable`, this.abs(r)),
    });
  }

  /** Drops the watches of `rel` and everything below it. */
  private retire(rel: string): void {
    const prefix = rel === '' ? '' : rel + '/';
    for (const [r, d] of this.dirs) {
      if (r === rel || r.startsWith(prefix)) {
        d.w.close();
        this.dirs.delete(r);
      }
    }
  }

  private onEvent(dir: string, type: string, name: string | Buffer | null): void {
    if (++this.turnEvents === 1) setImmediate(() => (this.turnEvents = 0));
    // The overflow notice itself is dropped by libuv: one less than the queue holds.
    if (this.turnEvents === this.queueMax - 1 && !this.closed) {
      this.problems.overflow(
        `the inotify event queue of ${this.root.configured} overflowed (${this.turnEvents} events at once,` +
          ` fs.inotify.max_queued_events=${this.queueMax}; the master was too busy to read them in time)`,
        this.root.configured,
      );
    }
    if (this.closed || typeof name !== 'string' || name === '' || !this.dirs.has(dir)) return;
    // A directory's events about itself (deleted, moved, chmod) carry its own
    // basename, like a child of that name: both readings are tried, and the
    // parent's watch reports the directory itself anyway.
    const rel = dir === '' ? name : `${dir}/${name}`;
    // A write already waiting for its check is covered by it: the check has
    // not been delivered, so the batch it ends up in leaves after this write
    // and its rsync reads the new content. Coalescing here is what keeps one
    // save (create, write, write...) to one batch. A 'rename' always gets its
    // own check: it can change the entry's type.
    if (type === 'change' && this.lanes.busy(rel)) return;
    this.queue.push(this.lanes.run(rel, () => this.check(rel, type)));
  }

  private async check(rel: string, type: string): Promise<WatchEvent | null> {
    let st: Stats | null;
    try {
      st = await this.stats.run(() => lstat(this.abs(rel)));
    } catch {
      st = null;
    }
    if (this.closed) return null;
    if (st === null) {
      const wasDir = this.dirs.has(rel);
      if (wasDir) this.retire(rel);
      // Type unknown for a file that is gone: "possibly a tree" is the consumer's rule.
      if (wasDir ? this.ex.excluded(rel, true) : this.ex.excludedAnyType(rel)) return null;
      return { kind: 'delete', path: rel, isDir: wasDir };
    }
    const isDir = st.isDirectory();
    if (this.ex.excluded(rel, isDir)) return null;
    if (!isDir) {
      if (this.dirs.has(rel)) this.retire(rel);
      return { kind: type === 'rename' ? 'create' : 'modify', path: rel, isDir: false };
    }
    if (this.dirs.get(rel)?.ino === st.ino) {
      // The same directory, its own attributes changed.
      if (type === 'change') return { kind: 'modify', path: rel, isDir: true };
      // Moved away and back: its watches followed it, but what changed inside
      // meanwhile was reported under paths that did not exist, and its
      // subdirectories may have been rearranged. Start it over.
      this.retire(rel);
    }
    // New here (created, moved in, or a new directory under an old name).
    if (!this.watchDir(rel, st.ino)) return { kind: 'create', path: rel, isDir: true };
    await this.watchBelow(rel);
    return this.closed ? null : { kind: 'create', path: rel, isDir: true };
  }
}
