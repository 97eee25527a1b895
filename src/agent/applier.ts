// The agent's work queue: batches merge into one pending set per path while
// rsync runs, so a burst becomes a handful of runs (one per path per round).
import { ChangeSet } from '../protocol/changeset.js';
import type { PathChanges } from '../protocol/changes.js';
import type { RunReport } from '../protocol/messages.js';
import { realClock, type Clock, type Timer } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import type { AgentConfig } from '../config/types.js';
import { buildRsyncArgs, type MirrorOptIns } from '../rsync/filter.js';
import { classifyRsyncExit } from '../rsync/exit-codes.js';
import { parseRsyncStats } from '../rsync/stats.js';
import { RsyncRunner, shellQuote } from './rsync-run.js';
import { describeRefused, guardChanges, isEmptyChanges } from './symlink-guard.js';

export interface ApplierPath {
  name: string;
  target: string;
  maxDelete: number;
  excludes: string[];
  /** rsync://user@host:port/module/ (behind TLS, the agent's tunnel on 127.0.0.1) */
  url: string;
  optIns?: Partial<MirrorOptIns>;
}

export interface ApplierDeps {
  rsync: AgentConfig['rsync'];
  dryRun: boolean;
  log: Logger;
  password: () => string | null;
  /** everything up to `seq` is applied (persist it) */
  onApplied: (seq: number) => void;
  onResult: (seq: number, ok: boolean, runs: RunReport[]) => void;
  onRunStart?: (paths: string[]) => void;
  /** a full sync's overall progress, at most about once a second */
  onProgress?: (path: string, percent: number) => void;
  clock?: Clock;
  /** first wait after a failed run; it doubles per failure in a row */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** runs rsync (one per applier: stop() kills only its own) */
  runner?: RsyncRunner;
}

const PENDING_LIMIT = 10_000;
/** Exit 23 (partial transfer) makes rsync skip deletions; try that path again this many times before accepting it. */
const PARTIAL_RETRIES = 3;
export const RETRY_MIN_MS = 500;
export const RETRY_MAX_MS = 30_000;
/** A full sync reports its progress at most this often. */
const PROGRESS_EVERY_MS = 1_000;

export class Applier {
  private paths = new Map<string, ApplierPath>();
  private readonly pending = new Map<string, ChangeSet>();
  private pendingSeq = 0;
  private running: Promise<void> | null = null;
  private retries = 0;
  private retryTimer: Timer | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;
  private readonly partials = new Map<string, number>();
  private readonly clock: Clock;
  readonly runner: RsyncRunner;
  /** rsync runs started, for tests and status */
  runs = 0;

  constructor(private readonly deps: ApplierDeps) {
    this.clock = deps.clock ?? realClock;
    this.runner = deps.runner ?? new RsyncRunner();
  }

  setPaths(paths: ApplierPath[]): void {
    this.paths = new Map(paths.map((p) => [p.name, p]));
  }

  get busy(): boolean {
    return this.running !== null;
  }

  get idle(): boolean {
    return this.running === null && this.isEmpty();
  }

  private isEmpty(): boolean {
    for (const cs of this.pending.values()) if (!cs.isEmpty) return false;
    return true;
  }

  /** Forget what was queued: the master's new run will send a full sync. */
  reset(): void {
    this.pending.clear();
    this.pendingSeq = 0;
  }

  enqueue(seq: number, changes: PathChanges[]): void {
    for (const c of changes) {
      if (!this.paths.has(c.name)) continue;
      let cs = this.pending.get(c.name);
      if (!cs) this.pending.set(c.name, (cs = new ChangeSet(PENDING_LIMIT)));
      cs.merge(c);
    }
    this.pendingSeq = Math.max(this.pendingSeq, seq);
    if (this.isEmpty() && changes.every((c) => !this.paths.has(c.name))) {
      // Nothing for us in it (paths we do not mirror): applied by definition.
      if (!this.running) {
        this.deps.onApplied(seq);
        this.deps.onResult(seq, true, []);
      }
      return;
    }
    this.kick();
  }

  private kick(): void {
    if (this.stopped || this.running || this.retryTimer) return;
    this.running = this.loop()
      .catch((err: unknown) => {
        // Nothing in a run may end the agent (a hostile master once did it with
        // one bad exclude): say so, and serve the next batch.
        this.deps.log.error('the applier stopped on an unexpected error; it goes on with the next batch', { err });
      })
      .finally(() => {
        this.running = null;
        if (!this.isEmpty() && !this.retryTimer) this.kick();
      });
  }

  private async loop(): Promise<void> {
    let reported = 0;
    while (!this.stopped && !this.isEmpty()) {
      const seq = this.pendingSeq;
      const work: PathChanges[] = [];
      for (const [name, cs] of this.pending) {
        if (!cs.isEmpty) work.push(cs.toChanges(name));
        cs.clear();
      }
      this.deps.onRunStart?.(work.map((w) => w.name));
      const reports = await Promise.all(work.map((w) => this.runGuarded(w)));
      for (const r of reports) {
        // After an I/O error rsync skips deletions and exits 23: a run that
        // "mostly worked" may have left deleted files behind. Run it again.
        if (r.kind === 'partial-ok' && r.exit === 23) {
          const n = (this.partials.get(r.path) ?? 0) + 1;
          this.partials.set(r.path, n);
          if (n <= PARTIAL_RETRIES) r.kind = 'retry';
        } else if (r.kind !== 'retry') {
          this.partials.delete(r.path);
        }
      }
      const retry = reports.filter((r) => r.kind === 'retry');
      // A retryable failure keeps its changes; they join whatever arrived meanwhile.
      for (const w of work) {
        if (reports.find((r) => r.path === w.name)?.kind !== 'retry') continue;
        let cs = this.pending.get(w.name);
        if (!cs) this.pending.set(w.name, (cs = new ChangeSet(PENDING_LIMIT)));
        cs.merge(w);
      }
      const ok = reports.every((r) => r.kind === 'ok' || r.kind === 'partial-ok' || r.kind === 'dry-run');
      if (retry.length === 0) {
        this.retries = 0;
        this.deps.onApplied(seq);
        this.deps.onResult(seq, ok, reports);
        reported = seq;
        continue;
      }
      this.deps.onResult(seq, false, reports);
      const delay = Math.min(this.deps.retryMaxMs ?? RETRY_MAX_MS, (this.deps.retryMinMs ?? RETRY_MIN_MS) * 2 ** this.retries++);
      this.deps.log.warn('rsync failed; retrying', { paths: retry.map((r) => r.path), inMs: delay, message: retry[0]!.message });
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.retryTimer = this.clock.setTimeout(resolve, delay);
      });
      this.retryTimer = null;
      this.wake = null;
    }
    // A batch with nothing for our paths that came in during the last run
    // (enqueue leaves it to the loop) is applied too; unreported, the master
    // would count it in flight for ever.
    if (!this.stopped && reported > 0 && this.pendingSeq > reported) {
      this.deps.onApplied(this.pendingSeq);
      this.deps.onResult(this.pendingSeq, true, []);
    }
  }

  /** One path's run; whatever it throws is that path's fatal failure, reported to the master, not the agent's end. */
  private async runGuarded(listed: PathChanges): Promise<RunReport> {
    try {
      return await this.runOne(listed);
    } catch (err) {
      const message = `cannot run rsync for this path: ${(err as Error).message ?? String(err)}`;
      this.deps.log.error('rsync run failed before it started', { path: listed.name, message });
      return { path: listed.name, full: listed.full, files: 0, bytes: 0, deleted: 0, kind: 'fatal', exit: null, message: message.slice(0, 4000), durationMs: 0 };
    }
  }

  private async runOne(listed: PathChanges): Promise<RunReport> {
    const p = this.paths.get(listed.name)!;
    const guard = guardChanges(p.target, listed);
    const changes = guard.safe;
    const refusal = guard.refused.length > 0 ? describeRefused(guard.refused) : null;
    if (refusal !== null) {
      this.deps.log.warn('refusing to sync through a symlink on the mirror', { path: p.name, target: p.target, message: refusal });
      if (isEmptyChanges(changes)) {
        return { path: p.name, full: false, files: 0, bytes: 0, deleted: 0, kind: 'refused', exit: null, message: refusal.slice(0, 4000), durationMs: 0 };
      }
    }
    const { args, stdin } = buildRsyncArgs({
      binary: this.deps.rsync.binary,
      url: p.url,
      target: p.target,
      excludes: p.excludes,
      changes,
      bwlimit: this.deps.rsync.bwlimit,
      timeout: this.deps.rsync.timeout,
      extra: this.deps.rsync.extra,
      maxDelete: p.maxDelete,
      isRoot: process.getuid?.() === 0,
      optIns: p.optIns,
    });
    const base = { path: p.name, full: changes.full, files: 0, bytes: 0, deleted: 0 };
    const command = shellQuote([this.deps.rsync.binary, ...args]);
    if (this.deps.dryRun) {
      const list = stdin ? stdin.toString('utf8').split('\0').filter(Boolean) : [];
      this.deps.log.info('dry run: would run', { command, includeList: list });
      return { ...base, kind: 'dry-run', exit: null, message: 'dry run: rsync not called', durationMs: 0 };
    }
    this.runs++;
    this.deps.log.debug('rsync', { path: p.name, full: changes.full, command });
    let onStdout: ((chunk: Buffer) => void) | undefined;
    if (changes.full && this.deps.onProgress) {
      // rsync's whole-transfer progress (with incremental recursion the
      // total grows as it goes, so the figure is a lower bound).
      args.unshift('--info=progress2');
      let lastSent = 0;
      onStdout = (chunk) => {
        const now = this.clock.now();
        if (now - lastSent < PROGRESS_EVERY_MS) return;
        const m = /(\d{1,3})%[^%]*$/.exec(chunk.toString('latin1'));
        if (!m) return;
        lastSent = now;
        this.deps.onProgress!(p.name, Math.min(100, Number(m[1])));
      };
    }
    const out = await this.runner.run(this.deps.rsync.binary, args, stdin, this.deps.password(), onStdout);
    if (out.spawnError) {
      return { ...base, kind: 'retry', exit: null, message: out.spawnError, durationMs: out.durationMs };
    }
    const cls = classifyRsyncExit(out.exit, out.signal);
    const stats = parseRsyncStats(out.stdout);
    const detail = lastLines(out.stderr, 3);
    // The rest of the batch was applied; what the guard held back is still reported.
    const refusedKind = refusal !== null && (cls.kind === 'ok' || cls.kind === 'partial-ok');
    return {
      ...base,
      files: stats.files,
      bytes: stats.bytes,
      deleted: stats.deleted,
      kind: refusedKind ? 'refused' : cls.kind,
      exit: out.exit,
      message: (refusedKind ? refusal! : cls.kind === 'ok' ? '' : `${cls.meaning}${detail ? ': ' + detail : ''}`).slice(0, 4000),
      durationMs: Math.round(out.durationMs),
    };
  }

  /** Retry now instead of waiting out the backoff (e.g. after reconnecting). */
  retryNow(): void {
    if (this.retryTimer) {
      this.clock.clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.wake?.();
    }
  }

  /** Kills the rsync runs in progress (shutdown: no orphans). */
  killRsync(sig?: NodeJS.Signals): void {
    this.runner.killAll(sig);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.retryNow();
    await this.running;
  }
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}
