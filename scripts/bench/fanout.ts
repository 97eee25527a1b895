// fan-out: 50 agents (processes) on one master. One change until all 50
// mirrors have it, against 50 bare pulls of the file at once; and the
// master's CPU per batch (utime+stime from /proc over a series of single-file
// changes) with 5 and with 50 agents. The growth per extra agent is compared
// with what the protocol costs per recipient (fanout-ref.ts: send the one
// signed frame, receive/verify/decode/validate an ack and a result).
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BareRsyncd, Cluster, cpuMs, limitRow, memMB, startMasterInfo, ratioRow, round, run, sameFile, sameMtime, scratchDir, summary, until,
  waitFor, withCluster, type Ctx, type Row, type WorkloadResult,
} from './lib.js';
import { sleep } from '../../harness/wait.js';

const REF = new URL('./fanout-ref.js', import.meta.url).pathname;

interface FanResult {
  agents: number;
  latency: number[];
  bare: number[];
  /** master CPU per change, less its idle rate over the same wall time */
  cpuPerBatchMs: number;
  rawCpuPerBatchMs: number;
  idleCpuMsPerS: number;
  msPerChange: number;
  batchesPerChange: number;
  changes: number;
  masterRssMB: number;
}

async function oneChange(c: Cluster, mirrors: string[], name: string): Promise<number> {
  const content = randomBytes(1024);
  const origin = join(c.origin(), name);
  const t0 = performance.now();
  writeFileSync(origin, content);
  const t1 = await until(() => mirrors.every((m) => sameFile(origin, join(m, name), content) && sameMtime(c.origin(), m)), [], 5, 120_000);
  return t1 - t0;
}

async function fan(ctx: Ctx, agents: number, samples: number, changes: number, warmup: number): Promise<FanResult> {
  const c = await new Cluster({ agents }).setup();
  return withCluster(c, async () => {
    await startMasterInfo(c);
    // Started a few at a time: 50 node processes booting at once on two cores
    // take long enough to hit handshake timeouts.
    for (let i = 0; i < agents; i++) {
      c.startAgent(i);
      if (i % 5 === 4) await sleep(300);
    }
    await c.waitIdle(300_000);
    ctx.log(`  ${agents} agents connected and synced`);
    const mirrors = [...Array(agents).keys()].map((i) => c.mirror(i));
    const bare = await new BareRsyncd({ www: c.origin() }).start();
    const scratch = scratchDir('fanout');
    const latency: number[] = [];
    const bareMs: number[] = [];
    try {
      for (let s = 0; s < samples; s++) {
        const name = `fan-${s}.bin`;
        latency.push(await oneChange(c, mirrors, name));
        await c.waitIdle(120_000);
        const t0 = performance.now();
        const outs = await Promise.all(
          mirrors.map((_, i) => {
            const d = join(scratch, `s${s}-${i}`);
            mkdirSync(d);
            return run('rsync', ['-a', '--sockopts=TCP_NODELAY', bare.url('www', name), d + '/']);
          }),
        );
        if (outs.some((o) => o.code !== 0)) throw new Error(`bare pull failed: ${outs.find((o) => o.code !== 0)!.stderr}`);
        bareMs.push(performance.now() - t0);
        await sleep(100);
      }
    } finally {
      bare.stop();
      rmSync(scratch, { recursive: true, force: true });
    }
    // Warm-up, untimed: a master that has handled a few batches is still
    // compiling its per-message code (V8 optimizes a function once it is hot:
    // the session's frame handler, the tracker, ws's receiver). That one-time
    // cost lands in the first few dozen batches, sooner with more agents, and
    // a master that runs for days does not pay it per batch.
    for (let k = 0; k < warmup; k++) {
      await oneChange(c, mirrors, `warm-${k}.bin`);
      await sleep(agents >= 20 ? 150 : 50);
    }
    await c.waitIdle(120_000);
    // CPU per batch: nothing else talks to the master meanwhile (no status polls).
    const pid = c.master!.child.pid!;
    const b0 = (await c.fetchStatus())!.batches;
    await sleep(200);
    const cpu0 = cpuMs(pid);
    const w0 = performance.now();
    for (let k = 0; k < changes; k++) {
      await oneChange(c, mirrors, `cpu-${k}.bin`);
      // Every agent's result reaches the master shortly after its rsync ends.
      await sleep(agents >= 20 ? 150 : 50);
    }
    const cpu1 = cpuMs(pid);
    const w1 = performance.now();
    const b1 = (await c.fetchStatus())!.batches;
    await c.waitIdle(120_000);
    // What the master burns with nothing to do (timers: log tail, root
    // guard, heartbeats) accrues for as long as a change takes to reach every
    // agent, which grows with their number; it is not work per batch.
    await sleep(500);
    const i0 = cpuMs(pid);
    const iw0 = performance.now();
    await sleep(ctx.quick ? 3_000 : 6_000);
    const idlePerMs = (cpuMs(pid) - i0) / (performance.now() - iw0);
    const rss = memMB(pid).rss;
    return {
      agents,
      latency,
      bare: bareMs,
      // Per batch, not per change: how many batches one write makes depends
      // on the watcher. inotify (the default) folds the write into the check
      // of the create still waiting, so a write is usually one batch, but a
      // create checked and sent before the write's event arrives makes a
      // second; chokidar sends its add, then the raw supplement's modify.
      // The notes report the batches per change measured.
      cpuPerBatchMs: (cpu1 - cpu0 - idlePerMs * (w1 - w0)) / Math.max(1, b1 - b0),
      rawCpuPerBatchMs: (cpu1 - cpu0) / Math.max(1, b1 - b0),
      idleCpuMsPerS: idlePerMs * 1000,
      msPerChange: (w1 - w0) / changes,
      batchesPerChange: (b1 - b0) / changes,
      changes,
      masterRssMB: rss,
    };
  });
}

/**
 * The same CPU measurement with agents in dry-run mode (-p: they ack, report
 * and never start rsync): the master's own per-batch work without N rsync
 * clients and daemon children competing with it for the two cores.
 */
async function fanDry(ctx: Ctx, agents: number, changes: number, warmup: number): Promise<{ cpuPerBatchMs: number; batchesPerChange: number }> {
  const c = await new Cluster({ agents, agentFlags: ['-p'] }).setup();
  return withCluster(c, async () => {
    await startMasterInfo(c);
    for (let i = 0; i < agents; i++) {
      c.startAgent(i);
      if (i % 5 === 4) await sleep(300);
    }
    await c.waitIdle(300_000);
    // Warm-up, untimed (see fan()): each change until every node reported it.
    for (let k = 0; k < warmup; k++) {
      writeFileSync(join(c.origin(), `warm-${k}.bin`), randomBytes(1024));
      await sleep(50);
      await waitFor(async () => {
        const s = await c.fetchStatus();
        return s !== null && s.nodes.every((n) => n.lastBatchApplied === s.batches);
      }, 60_000, 'dry-run agents to report the warm-up batch');
    }
    await sleep(500);
    const pid = c.master!.child.pid!;
    const spacing = 1_000;
    const b0 = (await c.fetchStatus())!.batches;
    const cpu0 = cpuMs(pid);
    const w0 = performance.now();
    for (let k = 0; k < changes; k++) {
      writeFileSync(join(c.origin(), `dry-${k}.bin`), randomBytes(1024));
      await sleep(spacing);
    }
    const cpu1 = cpuMs(pid);
    const w1 = performance.now();
    const s = await c.fetchStatus();
    if (!s || s.nodes.some((n) => n.lastBatchApplied !== s.batches)) throw new Error('dry-run agents did not report every batch within the spacing');
    const i0 = cpuMs(pid);
    const iw0 = performance.now();
    await sleep(ctx.quick ? 3_000 : 5_000);
    const idlePerMs = (cpuMs(pid) - i0) / (performance.now() - iw0);
    return { cpuPerBatchMs: (cpu1 - cpu0 - idlePerMs * (w1 - w0)) / Math.max(1, s.batches - b0), batchesPerChange: (s.batches - b0) / changes };
  });
}

async function reference(agents: number, rounds: number): Promise<number> {
  const out = await run(process.execPath, [REF, 'server', String(agents), String(rounds)]);
  if (out.code !== 0) throw new Error(`fanout-ref failed: ${out.stderr}`);
  return (JSON.parse(out.stdout.trim().split('\n').pop()!) as { cpuUsPerRound: number }).cpuUsPerRound / 1000;
}

export async function fanout(ctx: Ctx): Promise<WorkloadResult> {
  const big = ctx.quick ? 20 : 50;
  const small = 5;
  const changes = ctx.quick ? 10 : 40;
  const samples = ctx.quick ? 3 : 5;
  // Untimed changes before each CPU measurement (see fan()); INOSYNC_BENCH_FANOUT_WARMUP=0 measures a cold master.
  const warmup = Number(process.env.INOSYNC_BENCH_FANOUT_WARMUP ?? (ctx.quick ? 20 : 40));
  if (!Number.isInteger(warmup) || warmup < 0) throw new Error(`INOSYNC_BENCH_FANOUT_WARMUP must be a whole number, got ${process.env.INOSYNC_BENCH_FANOUT_WARMUP}`);
  const few = await fan(ctx, small, 1, changes, warmup);
  ctx.log(`  ${small} agents: ${round(few.cpuPerBatchMs, 2)} ms CPU per batch`);
  const many = await fan(ctx, big, samples, changes, warmup);
  ctx.log(`  ${big} agents: ${round(many.cpuPerBatchMs, 2)} ms CPU per batch; one change in ${round(summary(many.latency).p50)} ms`);
  const dryChanges = ctx.quick ? 10 : 20;
  const drySmall = await fanDry(ctx, small, dryChanges, warmup);
  const dryBig = await fanDry(ctx, big, dryChanges, warmup);
  ctx.log(`  dry-run agents: ${round(drySmall.cpuPerBatchMs, 2)} / ${round(dryBig.cpuPerBatchMs, 2)} ms CPU per batch`);
  const refRounds = ctx.quick ? 100 : 400;
  // Interleaved and repeated: the reference runs for a few seconds only.
  const refSmall = Math.min(await reference(small, refRounds), await reference(small, refRounds));
  const refBig = Math.min(await reference(big, refRounds), await reference(big, refRounds));
  const perAgent = (many.cpuPerBatchMs - few.cpuPerBatchMs) / (big - small);
  const refPerAgent = (refBig - refSmall) / (big - small);
  const lat = summary(many.latency);
  const bare = summary(many.bare);
  const rows: Row[] = [
    ratioRow('fan-out', `one change until all ${big} identical (p50 of ${samples})`, lat.p50, 'ms', bare.p50, `${big} bare pulls at once`),
    limitRow('fan-out', `master CPU per batch, ${small} agents (less idle)`, few.cpuPerBatchMs, 'ms', undefined, '<', { value: refSmall, what: 'protocol reference' }),
    limitRow('fan-out', `master CPU per batch, ${big} agents (less idle)`, many.cpuPerBatchMs, 'ms', undefined, '<', { value: refBig, what: 'protocol reference' }),
    ratioRow('fan-out', 'master CPU per extra agent per batch', perAgent * 1000, 'µs', refPerAgent * 1000, 'send + ack + result (reference)', 2),
    ratioRow(
      'fan-out',
      'same, agents in dry-run (no rsync competing)',
      ((dryBig.cpuPerBatchMs - drySmall.cpuPerBatchMs) / (big - small)) * 1000,
      'µs',
      refPerAgent * 1000,
      'send + ack + result (reference)',
      2,
    ),
  ];
  return {
    name: 'fan-out',
    rows,
    notes: [
      `master CPU from /proc/PID/stat (utime+stime, 10 ms ticks) over ${changes} single-file changes, after ${warmup} untimed ones (V8 warm-up), divided by the batches they made: ${round(many.batchesPerChange, 2)} batches per change with ${big} agents, ${round(few.batchesPerChange, 2)} with ${small}; master at its default log level (info; Cluster's -v would add a debug line per agent result and per rsync daemon log line)`,
      `reference (scripts/bench/fanout-ref.ts): a websocket server that per round seals one batch frame and sends it to every client, then opens, decodes and validates each client's signed ack and result; target: the master's cost per extra agent at most 2x that`,
      `dry-run agents: ${round(dryBig.batchesPerChange, 2)} batches per change with ${big} agents, ${round(drySmall.batchesPerChange, 2)} with ${small} (${dryChanges} changes, 1 s apart)`,
      `master RSS with ${big} agents: ${round(many.masterRssMB)} MB`,
      `raw master CPU per batch (idle not subtracted): ${round(few.rawCpuPerBatchMs, 1)} ms with ${small} agents, ${round(many.rawCpuPerBatchMs, 1)} ms with ${big}; ` +
        `idle master: ${round(few.idleCpuMsPerS, 1)} / ${round(many.idleCpuMsPerS, 1)} ms CPU per s; a change took ${round(few.msPerChange)} / ${round(many.msPerChange)} ms to reach every agent`,
    ],
    data: { warmup, few, many, dry: { small: drySmall, big: dryBig, changes: dryChanges }, reference: { small: refSmall, big: refBig }, perAgentMs: perAgent, refPerAgentMs: refPerAgent },
  };
}
