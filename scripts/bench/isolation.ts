// isolation: a burst synced by three agents, one of them limited to 10 KB/s
// (`rsync: {bwlimit: 10}` in its config). The two others must converge within
// 1.2x of their time in a run without the slow agent (two agents only), each
// measured as the median of a few bursts in the same cluster.
import {
  Cluster, ratioRow, round, startInfo, summary, timeConverged, withCluster, writeFiles, type Ctx, type WorkloadResult,
} from './lib.js';
import { sleep } from '../../harness/wait.js';

const FAST = [0, 1];

async function bursts(ctx: Ctx, agents: number, slow: boolean, reps: number, files: number, dirs: number): Promise<number[]> {
  const c = await new Cluster({
    agents,
    agent: (i) => (slow && i === 2 ? { rsync: { bwlimit: 10 } } : {}),
  }).setup();
  return withCluster(c, async () => {
    await startInfo(c);
    const times: number[] = [];
    for (let r = 0; r < reps; r++) {
      const batches = (await c.fetchStatus())?.batches ?? 0;
      const t0 = performance.now();
      writeFiles(c.origin(), dirs, files, 1024, `b${r}-d`);
      const t1 = performance.now();
      const conv = await timeConverged(c, FAST, t0, { minBatches: batches + 1 });
      times.push(conv.ms - (t1 - t0));
      ctx.log(`  ${slow ? 'with' : 'without'} the slow agent, burst ${r}: ${round(conv.ms - (t1 - t0))} ms after the last write`);
      await sleep(300);
    }
    if (slow) {
      const s = await c.fetchStatus();
      const n = s?.nodes.find((x) => x.name === c.agentName(2));
      ctx.log(`  slow agent: ${n?.state}, ${n?.pending} pending, ${n?.inFlight} in flight`);
    }
    return times;
  });
}

export async function isolation(ctx: Ctx): Promise<WorkloadResult> {
  const files = ctx.quick ? 1_000 : 5_000;
  const dirs = files / 100;
  const reps = ctx.quick ? 2 : 3;
  const without = await bursts(ctx, 2, false, reps, files, dirs);
  const withSlow = await bursts(ctx, 3, true, reps, files, dirs);
  const a = summary(without);
  const b = summary(withSlow);
  return {
    name: 'isolation',
    rows: [ratioRow('isolation', `2 fast agents converged, median of ${reps} bursts`, b.p50, 'ms', a.p50, 'same, without the slow agent', 1.2)],
    notes: [
      `${reps} bursts of ${files} files of 1 KiB in ${dirs} new directories each, timed from the last write until mirrors 0 and 1 are identical; the slow agent (rsync bwlimit 10 KB/s) never catches up during the run; baseline: a cluster of the two fast agents only`,
    ],
    data: { files, dirs, reps, without: without.map((x) => round(x)), withSlow: withSlow.map((x) => round(x)) },
  };
}
