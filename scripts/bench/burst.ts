// burst: 10,000 small files in 100 new directories; storm: 100 directory
// renames and 2,000 deletions on a prepared tree. Each until all three mirrors
// are identical, against three bare `rsync -a --delete` pulls of the finished
// tree run at once (the agents pull at once too) into copies of what the
// mirrors held before the change.
import { renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  assertStrictlyConverged, BareRsyncd, barePulls, Cluster, copyTree, ratioRow, round, rsyncRuns, scratchDir, timeConverged,
  startInfo, withCluster, writeFiles, type Ctx, type Row, type WorkloadResult,
} from './lib.js';

const AGENTS = [0, 1, 2];
const FILE_SIZE = 1024;

interface Change {
  /** the tree as the mirrors have it before the change (the cluster is running and converged) */
  prepare?: (origin: string) => void;
  /** the change itself, timed */
  apply: (origin: string) => void;
}

export interface SyncTiming {
  /** ms from the first write until every mirror is identical */
  fromStart: number;
  /** ms from the last write until every mirror is identical */
  afterWrites: number;
  writeMs: number;
  /** three bare pulls at once, ms until the last one ends */
  bareMs: number;
  bareEach: number[];
  runs: number[];
  checks: number;
}

/** Runs `change` on a converged 3-agent cluster and times it against the bare pulls. */
export async function timeChange(ctx: Ctx, c: Cluster, change: Change, agents = AGENTS): Promise<SyncTiming> {
  const bare = await new BareRsyncd({ www: c.origin() }).start();
  const scratch = scratchDir('pulls');
  try {
    // The baseline's destinations start where the mirrors are now.
    await Promise.all(agents.map((i) => copyTree(c.mirror(i), join(scratch, `m${i}`))));
    const runsBefore = agents.map((i) => rsyncRuns(c, i));
    const batches = (await c.fetchStatus())?.batches ?? 0;
    const t0 = performance.now();
    change.apply(c.origin());
    const t1 = performance.now();
    const conv = await timeConverged(c, agents, t0, { minBatches: batches + 1 });
    ctx.log(`  converged ${round(conv.ms)} ms after the first write (writes took ${round(t1 - t0)} ms)`);
    await assertStrictlyConverged(c, agents);
    const runs = agents.map((i, k) => rsyncRuns(c, i) - runsBefore[k]!);
    const b = await barePulls(bare.url('www'), agents.map((i) => join(scratch, `m${i}`)));
    ctx.log(`  bare pulls: ${round(b.ms)} ms`);
    return { fromStart: conv.ms, afterWrites: conv.ms - (t1 - t0), writeMs: t1 - t0, bareMs: b.ms, bareEach: b.each, runs, checks: conv.checks };
  } finally {
    bare.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

export function timingRows(workload: string, t: SyncTiming, target: number): Row[] {
  const what = `${t.bareEach.length} bare rsync -a --delete at once`;
  return [
    ratioRow(workload, 'after the last write, until identical', t.afterWrites, 'ms', t.bareMs, what, target),
    ratioRow(workload, 'from the first write (vs writes + bare pulls)', t.fromStart, 'ms', t.writeMs + t.bareMs, `writes + ${what}`),
  ];
}

/** Repetitions of burst and storm in one cluster: one sample moves by 2x with the machine's load. */
export function repsOf(ctx: Ctx): number {
  const reps = Number(process.env.INOSYNC_BENCH_REPS ?? (ctx.quick ? 1 : 3));
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`INOSYNC_BENCH_REPS must be a whole number of at least 1, got ${process.env.INOSYNC_BENCH_REPS}`);
  return reps;
}

/** After the last write, against the bare pulls: the figure the target is about. */
const ratioOf = (t: SyncTiming): number => t.afterWrites / t.bareMs;

/** The repetition with the median ratio, reported whole. */
export function medianRep(ts: SyncTiming[]): SyncTiming {
  const sorted = [...ts].sort((a, b) => ratioOf(a) - ratioOf(b));
  return sorted[(sorted.length - 1) >> 1]!;
}

function repsNote(ts: SyncTiming[]): string {
  return `${ts.length} repetitions, the median shown; ratios ${ts.map((t) => round(ratioOf(t), 2)).join(', ')}; rsync runs per agent ${ts.map((t) => t.runs.join('/')).join(', ')}`;
}

export function burstSizes(quick: boolean): { files: number; dirs: number } {
  return quick ? { files: 2_000, dirs: 20 } : { files: 10_000, dirs: 100 };
}

/** Runs `body` on the default watcher (inotify), then on chokidar and parcel, for comparison. */
async function bothWatchers(
  ctx: Ctx,
  name: string,
  body: (watcher: string) => Promise<{ rows: Row[]; note: string; data: Record<string, unknown> }>,
): Promise<WorkloadResult> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const data: Record<string, unknown> = {};
  // INOSYNC_BENCH_WATCHERS=inotify,parcel runs some backends only.
  const only = process.env.INOSYNC_BENCH_WATCHERS?.split(',').map((w) => w.trim()).filter(Boolean);
  const all = ['inotify', 'chokidar', 'parcel'];
  const bad = only?.filter((w) => !all.includes(w)) ?? [];
  if (bad.length > 0) throw new Error(`INOSYNC_BENCH_WATCHERS: unknown watcher ${bad.join(', ')}; use ${all.join(', ')}`);
  for (const watcher of only && only.length > 0 ? only : all) {
    ctx.log(`  ${name} with ${watcher}`);
    const r = await body(watcher);
    rows.push(...r.rows.map((row) => ({ ...row, metric: `${watcher}: ${row.metric}` })));
    notes.push(`${watcher}: ${r.note}`);
    data[watcher] = r.data;
  }
  return { name, rows, notes, data };
}

export async function burst(ctx: Ctx): Promise<WorkloadResult> {
  const { files, dirs } = burstSizes(ctx.quick);
  return bothWatchers(ctx, 'burst', async (watcher) => {
    const c = await new Cluster({ agents: 3, master: { watcher } }).setup();
    return withCluster(c, async () => {
      await startInfo(c);
      const ts: SyncTiming[] = [];
      for (let k = 0, reps = repsOf(ctx); k < reps; k++) {
        // Each repetition writes new directories next to the previous ones.
        ts.push(await timeChange(ctx, c, { apply: (o) => writeFiles(o, dirs, files, FILE_SIZE, `b${k}d`) }));
        await c.waitIdle(120_000);
      }
      const t = medianRep(ts);
      return {
        rows: timingRows('burst', t, 1.5),
        note: `${files} files of ${FILE_SIZE} B in ${dirs} new directories, 3 agents; ${repsNote(ts)}; writes took ${round(t.writeMs)} ms`,
        data: { files, dirs, fileSize: FILE_SIZE, ...roundAll(t), reps: ts.map(roundAll) },
      };
    });
  });
}

export async function storm(ctx: Ctx): Promise<WorkloadResult> {
  const dirs = ctx.quick ? 50 : 200;
  const per = 50;
  const renames = ctx.quick ? 25 : 100;
  const deletions = ctx.quick ? 500 : 2_000;
  return bothWatchers(ctx, 'storm', async (watcher) => {
    const c = await new Cluster({ agents: 3, master: { watcher } }).setup();
    return withCluster(c, async () => {
      writeFiles(c.origin(), dirs, dirs * per, FILE_SIZE);
      await startInfo(c); // the initial full sync brings the prepared tree
      await c.waitConverged(AGENTS, 120_000);
      const perDir = Math.ceil(deletions / (dirs - renames));
      const deleted: string[] = [];
      const ts: SyncTiming[] = [];
      for (let k = 0, reps = repsOf(ctx); k < reps; k++) {
        if (k > 0) {
          // Untimed: the deleted files come back, so every repetition deletes as many.
          for (const f of deleted.splice(0)) writeFileSync(join(c.origin(), f), Buffer.alloc(FILE_SIZE, 'x'));
          await c.waitConverged(AGENTS, 120_000);
          await c.waitIdle(120_000);
        }
        const from = k === 0 ? 'd' : `r${k - 1}_`;
        ts.push(
          await timeChange(ctx, c, {
            apply: (o) => {
              for (let i = 0; i < renames; i++) renameSync(join(o, `${from}${i}`), join(o, `r${k}_${i}`));
              // Deletions spread over the directories that were not renamed.
              let n = 0;
              for (let d = renames; d < dirs && n < deletions; d++) {
                for (let f = 0; f < perDir && n < deletions; f++, n++) {
                  unlinkSync(join(o, `d${d}`, `f${f}`));
                  deleted.push(join(`d${d}`, `f${f}`));
                }
              }
            },
          }),
        );
        await c.waitIdle(120_000);
      }
      const t = medianRep(ts);
      return {
        rows: timingRows('storm', t, 1.5),
        note: `${renames} directory renames (${renames * per} files moved) and ${deletions} file deletions in a tree of ${dirs * per} files in ${dirs} directories, 3 agents; ${repsNote(ts)}; the change took ${round(t.writeMs)} ms`,
        data: { dirs, filesPerDir: per, renames, deletions, ...roundAll(t), reps: ts.map(roundAll) },
      };
    });
  });
}

export function roundAll<T extends object>(o: T): T {
  return JSON.parse(JSON.stringify(o, (_k, v: unknown) => (typeof v === 'number' ? round(v, 1) : v))) as T;
}
