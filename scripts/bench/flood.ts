// flood: 100,000 files created as fast as one synchronous writer can, in
// 1,000 new directories. Converged time against three bare pulls of the
// finished tree at once, rsync runs per agent, and the master's peak RSS.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  BareRsyncd, barePulls, Cluster, cpuMs, limitRow, memMB, metaListing, metaDiff, ratioRow, round, rsyncRuns, sampleRss,
  scratchDir, startInfo, timeConverged, withCluster, writeFiles, type Ctx, type WorkloadResult,
} from './lib.js';
import { roundAll } from './burst.js';

const AGENTS = [0, 1, 2];

export async function flood(ctx: Ctx): Promise<WorkloadResult> {
  const files = ctx.quick ? 20_000 : 100_000;
  const dirs = files / 100;
  const size = 100;
  // The master's default backend unless INOSYNC_BENCH_FLOOD_WATCHER names one.
  const forced = process.env.INOSYNC_BENCH_FLOOD_WATCHER;
  const c = await new Cluster({ agents: 3, master: forced ? { watcher: forced } : {} }).setup();
  return withCluster(c, async () => {
    await startInfo(c);
    const watcher = (await c.fetchStatus())?.paths[0]?.backend ?? forced ?? 'default';
    ctx.log(`  watcher: ${watcher}${forced ? ' (INOSYNC_BENCH_FLOOD_WATCHER)' : ' (the master\'s default)'}`);
    const pid = c.master!.child.pid!;
    const idle = memMB(pid);
    const rss = sampleRss(pid, 50);
    const cpu0 = cpuMs(pid);
    const s0 = await c.fetchStatus();
    const batches0 = s0?.batches ?? 0;
    const watchErrors0 = s0?.paths[0]?.watchErrors ?? 0;
    const runs0 = AGENTS.map((i) => rsyncRuns(c, i));
    const t0 = performance.now();
    writeFiles(c.origin(), dirs, files, size);
    const t1 = performance.now();
    ctx.log(`  ${files} files written in ${round(t1 - t0)} ms`);
    const conv = await timeConverged(c, AGENTS, t0, { minBatches: batches0 + 1, timeoutMs: 600_000, pollMs: 50 });
    const mem = rss.stop();
    const cpu = cpuMs(pid) - cpu0;
    const s1 = await c.fetchStatus();
    const batches = (s1?.batches ?? 0) - batches0;
    // An overflowed inotify queue (or another watch problem) makes the master fall back to a full sync: worth knowing.
    const watchErrors = (s1?.paths[0]?.watchErrors ?? 0) - watchErrors0;
    const runs = AGENTS.map((i, k) => rsyncRuns(c, i) - runs0[k]!);
    ctx.log(`  converged ${round(conv.ms)} ms after the first write; runs ${runs.join(',')}; master peak ${round(mem.hwmMB)} MB`);
    // Untimed re-check of every entry's metadata (type, mode, owner, size, ns mtime); contents are
    // all alike here, hashing 400,000 files would add minutes and prove little more.
    const o = await metaListing(c.origin());
    for (const i of AGENTS) {
      const d = metaDiff(o, await metaListing(c.mirror(i)));
      if (d !== 0) throw new Error(`mirror${i} differs from the origin in ${d} entries`);
    }
    const bare = await new BareRsyncd({ www: c.origin() }).start();
    const scratch = scratchDir('flood');
    let b: { ms: number; each: number[] };
    try {
      b = await barePulls(bare.url('www'), AGENTS.map((i) => join(scratch, `m${i}`)));
    } finally {
      bare.stop();
      rmSync(scratch, { recursive: true, force: true });
    }
    ctx.log(`  bare pulls: ${round(b.ms)} ms`);
    const what = '3 bare rsync -a --delete at once';
    const afterWrites = conv.ms - (t1 - t0);
    return {
      name: 'flood',
      rows: [
        ratioRow('flood', 'after the last write, until identical', afterWrites, 'ms', b.ms, what, 1.5),
        ratioRow('flood', 'from the first write (vs writes + bare pulls)', conv.ms, 'ms', t1 - t0 + b.ms, `writes + ${what}`),
        limitRow('flood', 'rsync runs per agent (max)', Math.max(...runs), 'runs', 20, '<='),
        limitRow('flood', 'master peak RSS (VmHWM)', mem.hwmMB, 'MB', 300, '<', { value: idle.rss, what: 'master RSS idle before' }),
      ],
      notes: [
        `${files} files of ${size} B in ${dirs} new directories, one synchronous writer, 3 agents, ${watcher} watcher; ` +
          `rsync runs per agent: ${runs.join(', ')}; ${batches} batches; master CPU ${round(cpu / 1000, 2)} s; ` +
          `watch problems reported (each one a full sync): ${watchErrors}`,
      ],
      data: {
        files,
        dirs,
        size,
        watcher,
        writeMs: round(t1 - t0),
        convergedMs: round(conv.ms),
        afterWritesMs: round(afterWrites),
        bare: roundAll(b),
        runs,
        batches,
        watchErrors,
        masterCpuMs: cpu,
        masterRss: roundAll({ idle, ...mem }),
      },
    };
  });
}
