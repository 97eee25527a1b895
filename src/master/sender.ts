// Carries out the dispatcher's decisions: flushes the origin's fresh changes,
// sends each node what it is owed, signs every batch once, and looks again
// when a paced node's rest ends.
import type { Clock, Timer } from '../common/clock.js';
import { logs, type Logger } from '../common/log.js';
import type { PathChanges } from '../protocol/changes.js';
import { encode } from '../protocol/codec.js';
import { seal } from '../protocol/envelope.js';
import type { Signer } from '../protocol/sign.js';
import { splitChanges, summarize } from './batches.js';
import { dispatch, flushWait, type NodeView } from './dispatcher.js';
import type { NodeTracker } from './node-tracker.js';
import type { AgentSession } from './session.js';
import type { WatchedPath } from './watched-path.js';

export interface SenderHost {
  readonly log: Logger;
  readonly clock: Clock;
  readonly signer: Signer;
  readonly session: Uint8Array;
  readonly dryRun: boolean;
  stopped(): boolean;
  /** between batches while busy */
  delayMs(): number;
  readonly nodes: ReadonlyMap<string, NodeTracker>;
  readonly sessions: ReadonlyMap<string, AgentSession>;
  readonly paths: ReadonlyMap<string, WatchedPath>;
}

export class Sender {
  private seq = 0;
  /** batches signed since start */
  batches = 0;
  private flushTimer: Timer | null = null;
  private lastFlush = 0;
  private freshOldest: number | null = null;
  private paceTimer: Timer | null = null;
  private paceAt = Infinity;

  constructor(private readonly host: SenderHost) {}

  /** A path has fresh changes, the oldest seen at `now`. */
  changed(now: number): void {
    this.freshOldest ??= now;
    this.scheduleFlush(now);
  }

  /** Idle: send at once (after this tick's events). Busy: at most one batch per `delay`. */
  private scheduleFlush(now: number): void {
    if (this.flushTimer) return;
    this.flushTimer = this.host.clock.setTimeout(() => this.flush(), flushWait(now, this.lastFlush, this.host.delayMs()));
  }

  private flush(): void {
    this.flushTimer = null;
    if (this.host.stopped()) return;
    const now = this.host.clock.now();
    this.lastFlush = now;
    const fresh: PathChanges[] = [];
    for (const wp of this.host.paths.values()) {
      if (wp.fresh.isEmpty) continue;
      if (!wp.rootOk()) continue; // kept in `fresh` until the root is back
      fresh.push(wp.fresh.toChanges(wp.name));
      wp.fresh.clear();
    }
    const oldest = this.freshOldest ?? now;
    this.freshOldest = null;
    for (const wp of this.host.paths.values()) if (!wp.fresh.isEmpty) this.freshOldest = oldest;
    this.carryOut(this.host.nodes.values(), fresh, oldest, now);
  }

  /** Sends each of `nodes` that has room whatever it is owed, as one batch per node. */
  pump(nodes: Iterable<NodeTracker> = this.host.nodes.values()): void {
    if (this.host.stopped()) return;
    this.carryOut(nodes, [], null, this.host.clock.now());
  }

  /** Asks the dispatcher what `fresh` and the debts of `nodes` become, and does it. */
  private carryOut(nodes: Iterable<NodeTracker>, fresh: PathChanges[], oldest: number | null, now: number): void {
    const { sessions, paths } = this.host;
    const views: NodeView[] = [...nodes].map((n) => {
      const s = sessions.get(n.name);
      return { name: n.name, ready: !!s?.ready, buffered: s?.bufferedAmount ?? 0, inflight: n.inflight.length, hasPending: n.hasPending, restUntil: n.restUntil };
    });
    let lastEvent: number | null = null;
    for (const wp of paths.values()) if (wp.lastEvent !== null) lastEvent = Math.max(lastEvent ?? 0, wp.lastEvent);
    const d = dispatch({ now, nodes: views, fresh: fresh.length > 0, lastEvent });
    for (const name of d.absorb) this.host.nodes.get(name)!.absorb(fresh, oldest);
    if (d.share.length > 0) this.send(d.share, fresh, oldest, now);
    if (d.catchUp.length > 0) {
      const paused = new Set([...paths.values()].filter((wp) => wp.paused !== null).map((wp) => wp.name));
      for (const name of d.catchUp) {
        const taken = this.host.nodes.get(name)!.takePending(paused);
        if (taken.changes.length > 0) this.send([name], taken.changes, taken.oldest, now);
      }
    }
    if (d.lookAgainAt !== null && d.lookAgainAt < this.paceAt) {
      const clock = this.host.clock;
      if (this.paceTimer) clock.clearTimeout(this.paceTimer);
      this.paceAt = d.lookAgainAt;
      this.paceTimer = clock.setTimeout(() => {
        this.paceTimer = null;
        this.paceAt = Infinity;
        this.pump();
      }, d.lookAgainAt - now);
    }
  }

  /** `oldest` null: nothing changed on the origin (a reconciliation); the batch carries its send time. */
  private send(to: string[], changes: PathChanges[], oldest: number | null, now: number): void {
    const { log, signer, session } = this.host;
    for (const part of splitChanges(changes)) {
      const seq = ++this.seq;
      const body = encode({ t: 'batch', session, seq, to, time: oldest ?? now, changes: part });
      // Signed once, whatever the number of recipients.
      const frame = seal(signer, 'master->agent', body);
      this.batches++;
      if (this.host.dryRun) log.info('dry run: batch', { seq, to, changes: part });
      else if (logs('debug')) log.debug('batch', { seq, to, entries: summarize(part) });
      for (const name of to) {
        this.host.nodes.get(name)!.recordSent(seq, part, oldest, now);
        this.host.sessions.get(name)!.sendFrame(frame);
      }
    }
  }

  stop(): void {
    if (this.flushTimer) this.host.clock.clearTimeout(this.flushTimer);
    if (this.paceTimer) this.host.clock.clearTimeout(this.paceTimer);
    this.flushTimer = this.paceTimer = null;
  }
}
