// chokidar 5 backend: one inotify watch per file and per directory, ~1 ms
// latency, but slow to start and memory-hungry on large trees (100k files:
// 10-12 s, ~1 GB RSS).
//
// What it cannot report: an inotify queue overflow (libuv drops IN_Q_OVERFLOW
// without telling anyone), and anything under paths it failed to watch after
// ENOSPC. The master's periodic reconciliation is the safety net for both.

import { FSWatcher, type ThrottleType, type Throttler } from 'chokidar';
import type { Stats } from 'node:fs';
import { RawSupplement } from './chokidar-raw.js';
import { EventQueue } from './event-queue.js';
import { Exclusion } from './exclude.js';
import { countInotifyWatches } from './inotify-watches.js';
import { isWatchLimitError, ProblemReporter } from './problems.js';
import { guardWatchedRoot } from '../root-health.js';
import { absoluteOf, relativizer, resolveRoot } from './root.js';
import { walk } from './walk.js';
import { ancestorsOf } from '../../protocol/relpath.js';
import type { WatchEventKind, WatchOptions, Watcher } from './types.js';

/** How long a directory read may take before chokidar forgets the events that arrived during it. */
export const READDIR_THROTTLE_MS = 60_000;

/**
 * chokidar 5.0.0 re-reads a directory on every event in it, one read at a
 * time: events during a read are counted, and the read's end starts one more
 * read if any came. But the count lives in a throttle that expires after
 * 1 s: a read slower than that (an event loop busy with chokidar's own work,
 * e.g. the bench's storm, 100 directory renames while 5,000 moved files get
 * their watches) drops the count, and the entries those events announced are
 * never reported nor watched (59 of 100 renamed directories never reached any
 * mirror). Every read that ends clears its throttle, so a long expiry only
 * matters for a read whose stream failed, which chokidar reports as an error
 * and the master answers with a full sync.
 */
class PatientFSWatcher extends FSWatcher {
  override _throttle(actionType: ThrottleType, path: string, timeout: number): Throttler | false {
    return super._throttle(actionType, path, actionType === 'readdir' ? Math.max(timeout, READDIR_THROTTLE_MS) : timeout);
  }
}

export async function startChokidar(opts: WatchOptions): Promise<Watcher> {
  const root = await resolveRoot(opts.root);
  const rel = relativizer(root.real);
  const problems = new ProblemReporter('chokidar', opts.onProblem);
  const ex = new Exclusion(opts.ignore, problems);
  const queue = new EventQueue(opts.onEvents);
  const raw = new RawSupplement(rel, ex, queue);
  const guard = guardWatchedRoot(root, (what) => problems.root(opts.root, what));

  const fsw = new PatientFSWatcher({
    persistent: true,
    ignoreInitial: true,
    followSymlinks: false,
    // atomic (on by default) silently ignores every path matching
    // /\..*\.(sw[px])$|~$|\.subl.*\.tmp/ (editor backups such as "notes~"),
    // and its only other effect, turning unlink+add within 100 ms into
    // `change`, is coalescing the consumer already does.
    atomic: false,
    // chokidar skips files without the owner-read bit (mode 000, 0200...)
    // unless this is set; rsync running as root copies them.
    ignorePermissionErrors: true,
    // The event name already says file or directory; a stat per event would
    // only cost time and drop events for paths gone by then.
    alwaysStat: false,
    ignored: (abs: string, stats?: Stats) => {
      // chokidar hands this '/'-normalized paths: a name containing '\' arrives
      // split in two. Events are filtered again with their true path below.
      const r = rel(abs);
      if (!r) return false;
      // Called once without stats before it stats the path: only rule out
      // what is excluded either way, the call with stats decides the rest.
      return stats ? ex.excluded(r, stats.isDirectory()) : ex.excludedAnyType(r);
    },
  });

  const report = (kind: WatchEventKind, abs: string, isDir: boolean): void => {
    const r = rel(abs);
    if (r === '') {
      if (kind === 'delete') problems.root(opts.root, 'was deleted or moved away');
      return;
    }
    if (r === null || ex.excluded(r, isDir)) return;
    queue.push({ kind, path: r, isDir });
  };

  const on = problems.guard.bind(problems);
  let limitHit = false;
  fsw.on('add', on('handling add', (p) => report('create', p, false)));
  fsw.on('addDir', on('handling addDir', (p) => report('create', p, true)));
  fsw.on('change', on('handling change', (p) => report('modify', p, false)));
  fsw.on('unlink', on('handling unlink', (p) => report('delete', p, false)));
  fsw.on(
    'unlinkDir',
    on('handling unlinkDir', (p) => {
      const r = rel(p);
      if (r) raw.forgetBelow(r);
      report('delete', p, true);
    }),
  );
  fsw.on(
    'raw',
    on('handling a raw event', (type, name, details) => {
      raw.onRaw(type, name, (details as { watchedPath: string }).watchedPath);
    }),
  );
  fsw.on(
    'error',
    on('handling an error', (err: unknown) => {
      if (isWatchLimitError(err)) limitHit = true;
      const path = (err as { path?: unknown } | null)?.path;
      problems.fromError(err, 'chokidar failed to watch a path', typeof path === 'string' ? path : undefined);
    }),
  );

  await new Promise<void>((resolve) => {
    fsw.once('ready', () => resolve());
    fsw.add(root.real);
  });
  // Past the inotify limit nothing more can be watched (reported as a 'limit' problem).
  if (!limitHit) await watchMissed(fsw, root.real, ex, queue, () => limitHit);
  guard.start();

  return {
    backend: 'chokidar',
    stats: () => {
      const watches = countInotifyWatches();
      return watches === undefined ? {} : { watches };
    },
    close: async () => {
      guard.stop();
      queue.close();
      problems.close();
      await fsw.close();
    },
  };
}

/**
 * A directory created while chokidar crawls the tree at start can end up
 * never watched, and nothing below it either, for as long as the watcher
 * runs (measured: 1 of 8 made during a 200-directory crawl; a master
 * restarted under load lost every later change in such a directory). So the
 * tree is walked once the crawl is done, and what chokidar does not watch is
 * added and reported created; a few passes, as the additions race the same way.
 */
async function watchMissed(fsw: FSWatcher, rootReal: string, ex: Exclusion, queue: EventQueue, limitHit: () => boolean): Promise<void> {
  for (let pass = 0; pass < 3 && !limitHit(); pass++) {
    const watched = new Set(Object.keys(fsw.getWatched()));
    const missed: string[] = [];
    await walk(rootReal, '', ex, {
      entry: (e) => {
        if (e.isDir && !watched.has(absoluteOf(rootReal, e.rel))) missed.push(e.rel);
      },
    });
    if (missed.length === 0) return;
    // The outermost ones (an ancestor sorts first): adding a directory watches everything below it.
    const outer: string[] = [];
    const chosen = new Set<string>();
    for (const r of missed.sort()) {
      if (ancestorsOf(r).some((a) => chosen.has(a))) continue;
      chosen.add(r);
      outer.push(r);
    }
    for (const r of outer) {
      fsw.add(absoluteOf(rootReal, r));
      queue.push({ kind: 'create', path: r, isDir: true });
    }
    // add() crawls asynchronously; the next pass looks once these are in.
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline && !limitHit() && !outer.every((r) => absoluteOf(rootReal, r) in fsw.getWatched())) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
