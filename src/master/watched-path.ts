// One watched path: its watcher, the origin's changes not yet flushed, and
// whether its root may be synced at all. A path whose root is gone, replaced
// by another filesystem or missing its marker is paused: nothing of it is
// propagated until the root is back, then every node gets a full sync of it.
import type { MasterConfig, MasterPath } from '../config/types.js';
import type { Logger } from '../common/log.js';
import type { Clock } from '../common/clock.js';
import { ChangeSet } from '../protocol/changeset.js';
import type { MasterStatus } from '../protocol/status.js';
import { compileExcludes, type ExcludeMatcher } from '../rsync/excludes.js';
import { admits, kindOf } from './batches.js';
import { judgeRoot, observeRoot, RootPoller, type RootIdentity, type RootObservation, type RootProblem, type RootVerdict } from './root-health.js';
import { startWatcher } from './watcher/index.js';
import type { Watcher, WatchEvent, WatchProblem } from './watcher/types.js';

/**
 * The master syncs a root that is the same filesystem with its marker; a new
 * inode (deleted and restored) is still the source. The watcher cannot
 * follow it there: its watches died with the old directory, so it is replaced.
 */
const MASTER_TOLERATES: ReadonlySet<RootProblem> = new Set(['replaced']);

export interface PathHost {
  readonly log: Logger;
  readonly clock: Clock;
  /** the running config (a reload replaces it) */
  config(): MasterConfig;
  stopped(): boolean;
  /** the path has fresh changes to flush */
  changed(now: number): void;
  /** the root is back and the path resumed: every node owes a full sync of it */
  resumed(path: string): void;
}

type PathStatus = MasterStatus['paths'][number];

export class WatchedPath {
  readonly matcher: ExcludeMatcher;
  /** changes seen on the origin, not yet flushed */
  readonly fresh: ChangeSet;
  private watcher: Watcher | null = null;
  private identity: RootIdentity | null = null;
  private poller: RootPoller | null = null;
  #paused: string | null = null;
  /** the watcher reported its root gone: its inotify watches died with the old directory or mount */
  private watcherLost = false;
  /** a replacement watcher is starting */
  private resuming = false;
  /** which watcher's reports count: a replaced one may still deliver */
  private watcherGen = 0;
  private watchErrors = 0;
  private lastWatchProblem: { at: number; kind: string; message: string } | null = null;
  #lastEvent: number | null = null;

  constructor(
    readonly config: MasterPath,
    private readonly host: PathHost,
  ) {
    this.matcher = compileExcludes(config.exclude);
    this.fresh = new ChangeSet(host.config().maxPending);
  }

  get name(): string {
    return this.config.name;
  }
  /** why the path is paused, or null */
  get paused(): string | null {
    return this.#paused;
  }
  /** ms epoch of the last change admitted */
  get lastEvent(): number | null {
    return this.#lastEvent;
  }

  private observe(): RootObservation {
    return observeRoot(this.config.watch, { readable: true, marker: this.config.marker });
  }

  /** By default whether the root may be synced (a root made again may); tolerating nothing, whether it is still the watched directory. */
  private judge(obs: RootObservation, tolerate: ReadonlySet<RootProblem> | undefined = MASTER_TOLERATES): RootVerdict {
    return judgeRoot(this.config.watch, this.config.marker, obs, this.identity, tolerate);
  }

  /** Takes the root's identity; throws when it cannot be synced now. */
  checkAtStart(): void {
    const v = this.judge(this.observe());
    if (!v.ok) throw new Error(`path ${this.name}: ${v.reason}`);
    this.identity = v.identity;
  }

  /** Starts watching and looking at the root every `everyMs`. */
  async start(everyMs: number): Promise<void> {
    await this.watch();
    this.poller = new RootPoller({
      root: this.config.watch,
      marker: this.config.marker,
      readable: true,
      everyMs,
      clock: this.host.clock,
      onLook: (obs) => this.onLook(obs),
    });
    this.poller.start();
  }

  private async watch(): Promise<void> {
    // Reports can arrive before startWatcher resolves.
    const gen = ++this.watcherGen;
    this.watcherLost = false;
    const watcher = await startWatcher(this.host.config().watcher, {
      root: this.config.watch,
      // Exclude site 1 of 4 (docs/ARCHITECTURE.md): an excluded directory costs no inotify watch.
      ignore: (rel, isDir) => this.matcher.isExcluded(rel, isDir),
      onEvents: (events) => {
        if (this.watcherGen === gen) this.onEvents(events);
      },
      onProblem: (p) => {
        if (this.watcherGen === gen) this.onWatchProblem(p);
      },
    });
    this.watcher = watcher;
    this.host.log.info('watching', { path: this.name, dir: this.config.watch, backend: watcher.backend });
  }

  private onEvents(events: WatchEvent[]): void {
    const allowed = this.host.config().events;
    let added = 0;
    for (const ev of events) {
      if (!admits(allowed, ev.kind)) continue;
      // Site 2: a backend may still report an excluded path (an event for a new
      // directory can arrive before its ignore applies); it must not cost a batch.
      if (this.matcher.isExcluded(ev.path, ev.isDir)) continue;
      this.fresh.add(ev.path, kindOf(ev));
      added++;
    }
    if (added === 0) return;
    const now = this.host.clock.now();
    this.#lastEvent = now;
    this.host.changed(now);
  }

  private onWatchProblem(p: WatchProblem): void {
    const now = this.host.clock.now();
    this.watchErrors++;
    this.lastWatchProblem = { at: now, kind: p.kind, message: p.message };
    if (p.kind === 'root') {
      this.watcherLost = true;
      this.pause(p.message);
      return;
    }
    this.host.log.error('watch problem; falling back to full syncs of this path', { path: this.name, kind: p.kind, message: p.message });
    this.fresh.markFull();
    this.host.changed(now);
  }

  private pause(reason: string): void {
    if (this.#paused !== null) return;
    this.#paused = reason;
    this.host.log.error('path paused: not propagating anything until its root is back', { path: this.name, reason });
  }

  /** Whether the root may be synced now; pauses the path when not. */
  rootOk(): boolean {
    if (this.#paused !== null) return false;
    const v = this.judge(this.observe());
    if (!v.ok) {
      this.pause(v.reason);
      return false;
    }
    return true;
  }

  private onLook(obs: RootObservation): void {
    const v = this.judge(obs);
    if (!v.ok) return this.pause(v.reason);
    const same = this.judge(obs, new Set());
    if (!same.ok && same.problem === 'replaced' && !this.resuming) {
      // Made again under the same name: the watcher's own guard may not have looked yet.
      this.watcherLost = true;
      this.pause(same.reason);
    }
    if (this.#paused !== null && !this.resuming) void this.resume();
  }

  /**
   * The root is back. A watcher that lost it watches nothing any more (a
   * directory moved away and back keeps its watches, one deleted and
   * restored or a remounted filesystem does not), so it is replaced first:
   * the full sync that follows then covers whatever changed before the new
   * watcher was ready.
   */
  private async resume(): Promise<void> {
    this.resuming = true;
    try {
      if (this.watcherLost) {
        const old = this.watcher;
        this.watcher = null;
        this.watcherGen++; // what the old one still says no longer counts
        await old?.close();
        const before = this.observe();
        await this.watch();
        // What the new watcher watches is the directory from now on.
        const v = this.judge(before);
        if (v.ok) this.identity = v.identity;
        // stop() closed the watchers it found while this one was starting.
        if (this.host.stopped()) return void (await (this.watcher as Watcher | null)?.close());
      }
    } catch (err) {
      // Retried at the next check; the path stays paused meanwhile.
      this.host.log.error('cannot watch the path again; it stays paused', { path: this.name, err });
      return;
    } finally {
      this.resuming = false;
    }
    if (!this.judge(this.observe()).ok || this.watcherLost) return;
    this.host.log.info('path resumed: its root is back; every node gets a full sync of it', { path: this.name });
    this.#paused = null;
    this.host.resumed(this.name);
  }

  status(): PathStatus {
    return {
      name: this.name,
      watch: this.config.watch,
      backend: this.watcher?.backend ?? this.host.config().watcher,
      paused: this.#paused,
      watchErrors: this.watchErrors,
      lastWatchProblem: this.lastWatchProblem && { ...this.lastWatchProblem, at: new Date(this.lastWatchProblem.at).toISOString() },
      lastEvent: this.#lastEvent === null ? null : new Date(this.#lastEvent).toISOString(),
    };
  }

  async close(): Promise<void> {
    this.poller?.stop();
    await this.watcher?.close();
  }
}
