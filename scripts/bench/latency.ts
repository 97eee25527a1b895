// latency: one 1 KiB file written on the origin, until it is identical on all
// three mirrors (the file and the root directory's mtime, which rsync sets
// last). Baseline: a bare rsync pull of the same file from a bare daemon
// serving the same directory, spawned and timed the same way. Samples of the
// two are interleaved so that machine noise hits both alike.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  assertStrictlyConverged, BareRsyncd, Cluster, ratioRow, round, run, sameFile, sameMtime, scratchDir, summary, until, withCluster,
  type Ctx, type WorkloadResult,
} from './lib.js';
import { sleep } from '../../harness/wait.js';

const AGENTS = 3;

export async function latency(ctx: Ctx): Promise<WorkloadResult> {
  const samples = ctx.quick ? 10 : 50;
  const c = await new Cluster({ agents: AGENTS }).setup();
  return withCluster(c, async () => {
    await c.start();
    const bare = await new BareRsyncd({ www: c.origin() }).start();
    const scratch = scratchDir('latency');
    const ours: number[] = [];
    const base: number[] = [];
    const base3: number[] = [];
    try {
      const mirrors = [...Array(AGENTS).keys()].map((i) => c.mirror(i));
      for (let i = 0; i < samples; i++) {
        const name = `lat-${i}.bin`;
        const content = randomBytes(1024);
        const origin = join(c.origin(), name);
        const t0 = performance.now();
        writeFileSync(origin, content);
        const t1 = await until(
          () => mirrors.every((m) => sameFile(origin, join(m, name), content) && sameMtime(c.origin(), m)),
          mirrors,
        );
        ours.push(t1 - t0);
        await sleep(30);
        // The baseline: the same file, pulled by a bare rsync into an empty directory.
        const dest = join(scratch, `b${i}`);
        mkdirSync(dest);
        const b = await run('rsync', ['-a', '--sockopts=TCP_NODELAY', bare.url('www', name), dest + '/']);
        if (b.code !== 0) throw new Error(`bare pull failed: ${b.stderr}`);
        base.push(b.ms);
        // For context: three bare pulls at once, as the three agents do.
        const t3 = performance.now();
        const outs = await Promise.all(
          [0, 1, 2].map((k) => {
            const d = join(scratch, `c${i}-${k}`);
            mkdirSync(d);
            return run('rsync', ['-a', '--sockopts=TCP_NODELAY', bare.url('www', name), d + '/']);
          }),
        );
        if (outs.some((o) => o.code !== 0)) throw new Error('bare pull failed');
        base3.push(performance.now() - t3);
        await sleep(30);
      }
      await c.waitIdle();
      await assertStrictlyConverged(c, [0, 1, 2]);
    } finally {
      bare.stop();
      rmSync(scratch, { recursive: true, force: true });
    }
    // What the agents' rsync runs took (the master logs each agent's result): the rest is inosync's pipeline.
    const runMs = readFileSync(join(c.dir, 'master.log'), 'utf8')
      .split('\n')
      .filter((l) => / node synced .* files=1 /.test(l))
      .map((l) => Number(/ ms=(\d+)/.exec(l)?.[1]))
      .filter((n) => Number.isFinite(n));
    const runs = summary(runMs);
    const o = summary(ours);
    const b = summary(base);
    const b3 = summary(base3);
    const what = 'bare rsync pull of the file';
    return {
      name: 'latency',
      rows: [
        ratioRow('latency', `p50, ${samples} samples, 3 agents`, o.p50, 'ms', b.p50, what, 2),
        ratioRow('latency', 'p95', o.p95, 'ms', b.p95, what),
        ratioRow('latency', 'max', o.max, 'ms', b.max, what),
        ratioRow('latency', 'p50 vs 3 concurrent bare pulls', o.p50, 'ms', b3.p50, '3 bare pulls at once'),
      ],
      notes: [
        `the agents' own rsync runs (3 at once, 2 cores) took p50 ${round(runs.p50)} ms (${runs.n} runs, from the master's log); the rest of inosync's p50, ${round(o.p50 - runs.p50)} ms, is watcher, batch, websocket, spawn and this harness's detection`,
        `baseline: \`rsync -a --sockopts=TCP_NODELAY rsync://127.0.0.1:PORT/www/FILE DEST/\` against a bare rsync daemon (no auth, TCP_NODELAY, read only) serving the same origin directory, one pull, spawn to exit; samples interleaved with inosync's`,
      ],
      data: {
        ours: ours.map((x) => round(x, 2)),
        bare: base.map((x) => round(x, 2)),
        bare3: base3.map((x) => round(x, 2)),
        summary: { ours: o, bare: b, bare3: b3, agentRsyncRuns: runs },
      },
    };
  });
}
