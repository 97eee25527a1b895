// @parcel/watcher (2.5.6, inotify) watches a new directory only when its
// IN_CREATE arrives, and never looks inside it. Measured consequences:
// - `mkdir -p a/b/c && touch a/b/c/f`: only a (and maybe a/b) are reported,
//   c is never watched, f and every later change below c are never seen;
// - a directory moved into the tree: its subdirectories are never watched;
// - a directory renamed within the tree: its subdirectories keep reporting
//   under the old name.
// So every new directory is adopted here: its entries present now are
// reported as created (they may predate the watch), and each subdirectory
// gets a subscription of its own, which crawls and watches the whole subtree.
// Subdirectories created later in a watched directory are caught by the same
// rule when their create arrives. Subscriptions share parcel's one inotify
// instance, so overlapping ones cost no extra watches, only duplicate events.

import type { AsyncSubscription } from '@parcel/watcher';
import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { isWithin } from '../../protocol/relpath.js';
import type { EventQueue } from './event-queue.js';
import type { Exclusion } from './exclude.js';
import { watchLimitReached } from './inotify-probe.js';
import { excludedDirsFor } from './parcel-ignore.js';
import type { ProblemReporter } from './problems.js';
import { absoluteOf } from './root.js';
import { walk } from './walk.js';

export type SubscribeFn = (rel: string, ignore: string[]) => Promise<AsyncSubscription>;

export class Subtrees {
  private readonly subs = new Map<string, AsyncSubscription>();
  /** adoptions and retirements, in event order: a re-created directory's new
   * subscription must not start before the old one is gone */
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private adopting = 0;

  constructor(
    private readonly rootReal: string,
    private readonly ex: Exclusion,
    private readonly queue: EventQueue,
    private readonly problems: ProblemReporter,
    private readonly subscribe: SubscribeFn,
    private readonly unsubscribeFailed: (err: unknown, rel: string) => void,
  ) {}

  get count(): number {
    return this.subs.size;
  }

  /** `rel` was just reported created and is a directory. */
  adopt(rel: string): void {
    this.adopting++;
    this.then(() => this.adoptNow(rel).finally(() => this.adopting--));
  }

  /** `rel` was deleted or moved away: drop subscriptions at or below it. */
  retire(rel: string): void {
    if (this.subs.size === 0 && this.adopting === 0) return;
    // Decided when the step runs: an adoption queued before may add one.
    this.then(() => this.drop([...this.subs.keys()].filter((s) => isWithin(s, rel))));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
    await this.drop([...this.subs.keys()]);
  }

  private then(step: () => Promise<void>): void {
    this.chain = this.chain.then(step).catch((err) => {
      this.problems.fromError(err, 'following a new directory failed');
    });
  }

  private async adoptNow(rel: string): Promise<void> {
    if (this.closed) return;
    const abs = absoluteOf(this.rootReal, rel);
    let entries: Dirent[];
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch {
      return; // gone again; its delete event follows
    }
    const subdirs: string[] = [];
    for (const d of entries) {
      const child = `${rel}/${d.name}`;
      const isDir = d.isDirectory();
      if (this.ex.excluded(child, isDir)) continue;
      this.queue.push({ kind: 'create', path: child, isDir });
      if (isDir) subdirs.push(child);
    }
    if (subdirs.length === 0) {
      // No subscription of ours will fail loudly here, so ask directly.
      if (watchLimitReached(abs)) this.problems.limit(abs);
      return;
    }
    for (const dir of subdirs) {
      if (this.closed) return;
      await this.cover(dir);
    }
  }

  /** Subscribes to `rel`'s subtree, then reports what it already holds. */
  private async cover(rel: string): Promise<void> {
    const abs = absoluteOf(this.rootReal, rel);
    if (!this.subs.has(rel)) {
      const stop = (): boolean => this.closed;
      const ignore = await excludedDirsFor(this.rootReal, rel, this.ex, stop);
      try {
        const sub = await this.subscribe(rel, ignore);
        if (this.closed) {
          await sub.unsubscribe().catch((err) => this.unsubscribeFailed(err, rel));
          return;
        }
        this.subs.set(rel, sub);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Deleted before parcel could crawl it: nothing left to watch.
        if (code === 'ENOENT' || /No such file|Not a directory/.test(String(err))) return;
        this.problems.fromError(err, `cannot watch new directory ${abs}`, abs);
      }
    }
    // Anything created before the subscription took hold shows up here;
    // anything after, through the subscription.
    await walk(this.rootReal, rel, this.ex, {
      stop: () => this.closed,
      entry: (e) => this.queue.push({ kind: 'create', path: e.rel, isDir: e.isDir }),
    });
  }

  private async drop(rels: string[]): Promise<void> {
    for (const rel of rels) {
      const sub = this.subs.get(rel);
      if (!sub) continue;
      this.subs.delete(rel);
      await sub.unsubscribe().catch((err) => this.unsubscribeFailed(err, rel));
    }
  }
}
