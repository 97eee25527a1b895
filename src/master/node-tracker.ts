// What the master knows about one node: the changes it still owes it, what is
// in flight, and the figures the status page shows. No I/O here: the session
// and the master feed it events and ask it what to send.
import { ChangeSet } from '../protocol/changeset.js';
import type { PathChanges } from '../protocol/changes.js';
import type { RunReport } from '../protocol/messages.js';
import type { NodeError, NodeState, NodeStatus } from '../protocol/status.js';
import { PACE_MIN_RUN_MS, restAfter } from './pacing.js';
import { realClock, type Clock } from '../common/clock.js';

/** Lag above which a connected node counts as lagging. */
export const LAGGING_AFTER_S = 30;

export interface InFlight {
  seq: number;
  changes: PathChanges[];
  /** ms epoch of the oldest origin change this batch carries; null: a reconciliation only, not lag */
  oldest: number | null;
  sentAt: number;
  acked: boolean;
  full: boolean;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

export interface NodeTrackerOptions {
  clock?: Clock;
}

/** The tracker owns its state: others read the `#` fields through the getters below and change them through its methods. */
export class NodeTracker {
  private readonly pending = new Map<string, ChangeSet>();
  /** ms epoch of the oldest change in `pending`, null when nothing is pending */
  #pendingOldest: number | null = null;
  readonly #inflight: InFlight[] = [];
  private readonly clock: Clock;

  private connected = false;
  private everConnected = false;
  private connectedSince: number | null = null;
  #lastSeen: number | null = null;
  private address: string | null = null;
  private version: string | null = null;
  private lastSent: number | null = null;
  #lastAcked: number | null = null;
  #lastApplied: number | null = null;
  private lastSync: NodeStatus['lastSync'] = null;
  #progress: NodeStatus['progress'] = null;
  #lastError: NodeError | null = null;
  private lastRefusal: NodeStatus['lastRefusal'] = null;
  /** seq of the full sync sent when the node connected, until it is applied */
  private initialSeq: number | null = null;
  /** runs in a row that ended with more owed */
  #owedStreak = 0;
  /** ms epoch until which a paced node rests, unless the origin goes quiet first; 0: not paced */
  #restUntil = 0;
  private syncsOk = 0;
  private syncsFailed = 0;
  private bytesTotal = 0;
  private filesTotal = 0;

  constructor(
    readonly name: string,
    readonly publicKey: Uint8Array,
    private readonly pathNames: readonly string[],
    private readonly limit: number,
    opts: NodeTrackerOptions = {},
  ) {
    this.clock = opts.clock ?? realClock;
    // A node that has never been synced owes a full sync of everything.
    for (const p of pathNames) this.changesFor(p).markFull();
    this.#pendingOldest = this.clock.now();
  }

  get inflight(): readonly Readonly<InFlight>[] {
    return this.#inflight;
  }
  get pendingOldest(): number | null {
    return this.#pendingOldest;
  }
  get lastSeen(): number | null {
    return this.#lastSeen;
  }
  get lastAcked(): number | null {
    return this.#lastAcked;
  }
  get lastApplied(): number | null {
    return this.#lastApplied;
  }
  get lastError(): NodeError | null {
    return this.#lastError;
  }
  get progress(): NodeStatus['progress'] {
    return this.#progress;
  }
  get owedStreak(): number {
    return this.#owedStreak;
  }
  get restUntil(): number {
    return this.#restUntil;
  }

  private changesFor(path: string): ChangeSet {
    let cs = this.pending.get(path);
    if (!cs) {
      cs = new ChangeSet(this.limit);
      this.pending.set(path, cs);
    }
    return cs;
  }

  /**
   * The node's last two runs ended with more owed, the last one long enough
   * to matter: it runs behind a busy origin and gets one batch at a time,
   * each after a rest (pacing.ts). One such run is not enough: a write often
   * reaches the node as a create and then a modify, in two batches, and a
   * node paced for that would leave the batches shared by the caught-up
   * nodes. Ended by a run that leaves nothing owed, a retry, or a disconnect.
   */
  get paced(): boolean {
    return this.#restUntil !== 0;
  }

  private unpace(): void {
    this.#owedStreak = 0;
    this.#restUntil = 0;
  }

  get hasPending(): boolean {
    for (const cs of this.pending.values()) if (!cs.isEmpty) return true;
    return false;
  }

  get pendingCount(): number {
    let n = 0;
    for (const cs of this.pending.values()) n += cs.full ? 1 : cs.size;
    return n;
  }

  /** Changes this node missed while busy or away join what it is owed. */
  absorb(changes: readonly PathChanges[], oldest: number | null): void {
    for (const c of changes) this.changesFor(c.name).merge(c);
    if (changes.length > 0 && oldest !== null) this.#pendingOldest = Math.min(this.#pendingOldest ?? oldest, oldest);
  }

  /**
   * `lag: false` for a reconciliation: it repairs drift nobody saw happen, so
   * a long full sync is work to do, not a change the node is behind on.
   */
  markFull(path?: string, { lag = true }: { lag?: boolean } = {}): void {
    for (const p of path === undefined ? this.pathNames : [path]) this.changesFor(p).markFull();
    if (lag) this.#pendingOldest = Math.min(this.#pendingOldest ?? this.clock.now(), this.clock.now());
  }

  /** Empties the pending set into a list of changes to send as one catch-up batch. */
  takePending(hold: ReadonlySet<string> = new Set()): { changes: PathChanges[]; oldest: number | null } {
    const changes: PathChanges[] = [];
    let held = false;
    for (const [name, cs] of this.pending) {
      if (cs.isEmpty) continue;
      if (hold.has(name)) {
        held = true;
        continue;
      }
      changes.push(cs.toChanges(name));
      cs.clear();
    }
    const oldest = this.#pendingOldest;
    if (!held) this.#pendingOldest = null;
    return { changes, oldest };
  }

  recordSent(seq: number, changes: PathChanges[], oldest: number | null, now: number): void {
    const full = changes.some((c) => c.full);
    if (full && this.lastSent === null) this.initialSeq = seq;
    this.#inflight.push({ seq, changes, oldest, sentAt: now, acked: false, full });
    this.lastSent = seq;
  }

  onAck(seq: number, now: number): void {
    this.#lastSeen = now;
    for (const f of this.#inflight) if (f.seq <= seq) f.acked = true;
    this.#lastAcked = Math.max(this.#lastAcked ?? 0, seq);
  }

  /** The agent applied (or gave up on) everything up to `seq`. */
  onResult(seq: number, ok: boolean, runs: RunReport[], now: number): void {
    this.#lastSeen = now;
    this.#progress = null;
    let durationMs = 0;
    let files = 0;
    let bytes = 0;
    let full = false;
    for (const r of runs) {
      durationMs = Math.max(durationMs, r.durationMs);
      files += r.files;
      bytes += r.bytes;
      full ||= r.full;
    }
    this.bytesTotal += bytes;
    this.filesTotal += files;
    const failed = runs.filter((r) => r.kind === 'retry' || r.kind === 'fatal' || r.kind === 'refused');
    if (ok) {
      this.syncsOk++;
      this.#lastError = null;
      this.lastSync = { at: new Date(now).toISOString(), durationMs, files, bytes, full };
    } else {
      this.syncsFailed++;
      const r = failed[0];
      this.#lastError = {
        at: new Date(now).toISOString(),
        path: r?.path ?? null,
        exit: r?.exit ?? null,
        kind: r?.kind ?? 'fatal',
        message: r?.message ?? 'sync failed',
      };
    }
    // A retryable failure stays in flight: the agent keeps it and tries again.
    const stillOwed = !ok && failed.some((r) => r.kind === 'retry');
    if (stillOwed) {
      // A node retrying a failed run is not behind a busy origin, and what
      // happens next may be its cure (a disk filled by files the origin then
      // deletes): it gets new changes at once again, to merge into its retry.
      this.unpace();
    } else {
      while (this.#inflight.length > 0 && this.#inflight[0]!.seq <= seq) this.#inflight.shift();
      this.#lastApplied = Math.max(this.#lastApplied ?? 0, seq);
      if (this.initialSeq !== null && seq >= this.initialSeq) this.initialSeq = null;
      this.#owedStreak = this.#inflight.length > 0 || this.hasPending ? this.#owedStreak + 1 : 0;
      this.#restUntil = this.#owedStreak >= 2 && durationMs >= PACE_MIN_RUN_MS ? now + restAfter(durationMs) : 0;
    }
  }

  /** The agent's rsync is this far through a full sync of `path`. */
  onProgress(path: string, percent: number, now: number): void {
    this.#progress = { path, percent };
    this.#lastSeen = now;
  }

  /** The agent refused a frame from the master. */
  onReject(reason: string, now: number): void {
    this.#lastError = { at: new Date(now).toISOString(), path: null, exit: null, kind: 'rejected', message: reason };
  }

  /** A connection claiming to be this node was turned away. */
  onRefused(at: string, address: string | null, reason: string): void {
    this.lastRefusal = { at, address, reason };
  }

  /**
   * Only an authenticated session moves the node's state, lastSeen and
   * address: a hello proves nothing, so anyone could send one to make a dead
   * mirror look alive (issue 10, item 6). Unauthenticated attempts are
   * refusals (`onRefused`).
   */
  onReady(version: string, now: number, address: string | null = null): void {
    this.address = address;
    this.connected = true;
    this.everConnected = true;
    this.connectedSince = now;
    this.#lastSeen = now;
    this.version = version;
    // Whatever the node is sent first after connecting is its initial sync.
    this.lastSent = null;
  }

  /** Whatever was in flight may not have been applied: owe it again. */
  onDisconnect(now: number): void {
    this.connected = false;
    this.#progress = null;
    this.#lastSeen = now;
    for (const f of this.#inflight) this.absorb(f.changes, f.oldest);
    this.#inflight.length = 0;
    this.unpace();
  }

  lagSeconds(now: number): number {
    let oldest = this.#pendingOldest ?? Infinity;
    for (const f of this.#inflight) if (f.oldest !== null) oldest = Math.min(oldest, f.oldest);
    return oldest === Infinity ? 0 : Math.max(0, (now - oldest) / 1000);
  }

  state(now: number): NodeState {
    if (!this.connected) {
      return this.everConnected ? 'disconnected' : 'never-connected';
    }
    if (this.#lastError !== null) return 'error';
    if (this.initialSeq !== null) return 'initial-sync';
    if (this.lagSeconds(now) > LAGGING_AFTER_S) return 'lagging';
    if (this.#inflight.length > 0 || this.hasPending) return 'syncing';
    return 'idle';
  }

  status(now: number): NodeStatus {
    return {
      name: this.name,
      state: this.state(now),
      connected: this.connected,
      connectedSince: iso(this.connected ? this.connectedSince : null),
      lastSeen: iso(this.#lastSeen),
      address: this.address,
      version: this.version,
      lastBatchSent: this.lastSent,
      lastBatchAcked: this.#lastAcked,
      lastBatchApplied: this.#lastApplied,
      pending: this.pendingCount + this.#inflight.reduce((n, f) => n + f.changes.reduce((m, c) => m + (c.full ? 1 : c.files.length + c.dirs.length + c.trees.length), 0), 0),
      inFlight: this.#inflight.length,
      pacedUntil: iso(this.paced ? this.#restUntil : null),
      lagSeconds: Math.round(this.lagSeconds(now) * 1000) / 1000,
      lastSync: this.lastSync,
      progress: this.#progress,
      lastError: this.#lastError,
      lastRefusal: this.lastRefusal,
      syncs: { ok: this.syncsOk, failed: this.syncsFailed },
      bytesTotal: this.bytesTotal,
      filesTotal: this.filesTotal,
    };
  }
}
