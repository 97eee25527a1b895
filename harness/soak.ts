// Soak: minutes of random churn on the origin while random faults hit the
// cluster (agents and the master killed with SIGKILL and restarted, a
// mirror's link cut and restored, the rsync daemon killed), then churn stops
// and every mirror must become identical to the origin. Runs on network
// namespaces where it can (root, iproute2), else on loopback and says so.
// scripts/soak.ts is its command line; test/soak.test.ts runs it in-process.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from './cluster.js';
import { Churn } from './churn.js';
import { hardKillAgent, hardKillMaster, killRsyncDaemon, labCluster, rsyncTempFiles } from './faults.js';
import { Lab } from './netns.js';
import { selfSignedCert } from './certs.js';
import { Rng } from './rng.js';
import { diffTrees, snapshotTree } from './tree.js';
import { sleep } from './wait.js';

export const FAULT_KINDS = ['agent', 'master', 'rsyncd', 'link'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SoakOptions {
  minutes: number;
  seed: number;
  agents: number;
  /** the master's reconcile interval, s; 0: none, so events and fault recovery alone must converge */
  reconcile: number;
  faults: readonly FaultKind[];
  /** wss:// and rsync over TLS (a certificate made with openssl) */
  tls: boolean;
  /** leave the cluster's directory (logs, trees) behind */
  keep: boolean;
  /** report every churn operation */
  trace: boolean;
}

export interface SoakOutput {
  /** a progress line; prefixed with "[soak +Ns]" */
  line(text: string): void;
  /** raw text: the differences and logs of a failed run */
  write(text: string): void;
}

/** One soak run: run() once; abort() from a signal handler or a test's teardown. */
export class Soak {
  private readonly started = Date.now();
  private readonly churnRng: Rng;
  private readonly rng: Rng;
  private lab: Lab | null = null;
  private cluster: Cluster | null = null;
  private stopped = false;
  private finished = false;

  constructor(
    private readonly o: SoakOptions,
    private readonly out: SoakOutput,
  ) {
    // Churn and faults draw from streams of their own, so each replays the
    // same sequence for a seed; how they interleave still depends on timing.
    this.churnRng = new Rng(o.seed);
    this.rng = new Rng(o.seed ^ 0x5bd1e995);
  }

  private say(msg: string): void {
    this.out.line(`[soak +${((Date.now() - this.started) / 1000).toFixed(1)}s] ${msg}`);
  }

  /** True when every mirror ended identical to the origin. */
  async run(): Promise<boolean> {
    const o = this.o;
    this.say(`seed ${o.seed} (rerun with --seed ${o.seed}), ${o.minutes} min, ${o.agents} agents, reconcile ${o.reconcile || 'off'}${o.tls ? ', TLS' : ''}`);
    const hosts = ['master', ...Array.from({ length: o.agents }, (_, i) => `mirror${i}`)];
    const lab = await Lab.create(hosts);
    this.lab = lab;
    this.say(`hosts on ${lab.label}${lab.fallback ? ` (${lab.fallback}); link faults are skipped` : ''}`);
    let passed = false;
    let tlsDir: string | null = null;
    try {
      let opts: Parameters<typeof labCluster>[1] = { agents: o.agents, master: { reconcile: o.reconcile } };
      if (o.tls) {
        tlsDir = mkdtempSync(join(tmpdir(), 'inosync-soak-tls-'));
        opts = withTls(tlsDir, lab.address('master'), o);
      }
      this.cluster = await labCluster(lab, opts);
      await this.cluster.start();
      passed = await this.soak(this.cluster, lab);
    } catch (err) {
      if (!this.stopped) this.say(`failed: ${(err as Error).stack ?? String(err)}`);
      passed = false;
    } finally {
      if (o.keep && this.cluster) process.env.INOSYNC_KEEP_TEST_DIRS = '1';
      await this.cluster?.cleanup();
      await lab.close();
      if (tlsDir !== null) rmSync(tlsDir, { recursive: true, force: true });
      this.finished = true;
    }
    this.say(passed && !this.stopped ? 'PASS: every mirror is identical to the origin' : 'FAIL');
    return passed && !this.stopped;
  }

  /** Stopped from outside (a signal, a test's timeout): nothing of the cluster may outlive us. */
  async abort(why: string): Promise<void> {
    if (this.stopped || this.finished) return;
    this.stopped = true;
    this.say(`stopped by ${why}`);
    await this.cluster?.cleanup();
    this.lab?.closeSync();
  }

  private async soak(c: Cluster, lab: Lab): Promise<boolean> {
    const o = this.o;
    const churn = new Churn(c.origin(), this.churnRng, { maxEntries: 2500, onOp: o.trace ? (op) => this.say(`op ${op}`) : undefined });
    const faults: Record<string, number> = {};
    const until = Date.now() + o.minutes * 60_000;
    const going = (): boolean => !this.stopped && Date.now() < until;

    const churning = (async () => {
      while (going()) {
        await churn.burst(this.churnRng.int(1, 40));
        await sleep(this.churnRng.int(0, 250));
      }
    })();

    const faulting = (async () => {
      // The first fault once there is something to sync, the last well before the end.
      await sleep(this.rng.int(3_000, 8_000));
      const kinds = o.faults.filter((k) => k !== 'link' || lab.isolated);
      while (kinds.length > 0 && !this.stopped && Date.now() < until - 5_000) {
        const kind = this.rng.pick(kinds);
        faults[kind] = (faults[kind] ?? 0) + 1;
        await this.inject(c, lab, kind);
        await sleep(this.rng.int(3_000, 12_000));
      }
    })();

    await Promise.all([churning, faulting]);
    if (this.stopped) return false;
    const s = churn.stats;
    this.say(`churn stopped: ${s.ops} operations (${s.created} created, ${s.written} written, ${s.renamed} renamed, ${s.deleted} deleted, ${s.dirs} dir trees, ${s.failed} raced)`);
    this.say(`faults: ${Object.entries(faults).map(([k, n]) => `${k} x${n}`).join(', ') || 'none'}`);

    const settleStart = Date.now();
    try {
      await c.waitConverged(undefined, 180_000);
    } catch {
      // The report below lists every difference, not just the first few.
    }
    const origin = await snapshotTree(c.origin());
    let failed = false;
    for (let i = 0; i < o.agents; i++) {
      const diffs = diffTrees(origin, await snapshotTree(c.mirror(i)), { names: ['origin', `mirror${i}`] });
      const temps = rsyncTempFiles(c.mirror(i));
      if (diffs.length === 0 && temps.length === 0) continue;
      failed = true;
      this.say(`mirror${i} differs from the origin in ${diffs.length} places:`);
      for (const d of diffs.slice(0, 200)) this.out.write(`  ${d}\n`);
      if (diffs.length > 200) this.out.write(`  ... and ${diffs.length - 200} more\n`);
      if (temps.length > 0) this.say(`mirror${i} holds rsync temporary files: ${temps.map((t) => JSON.stringify(t)).join(', ')}`);
    }
    if (failed) {
      this.out.write(`${c.logs(80)}\n`);
      return false;
    }
    this.say(`converged ${((Date.now() - settleStart) / 1000).toFixed(1)} s after churn stopped; ${origin.size} entries identical on ${o.agents} mirrors`);
    return true;
  }

  private async inject(c: Cluster, lab: Lab, kind: FaultKind): Promise<void> {
    const rng = this.rng;
    switch (kind) {
      case 'agent': {
        const i = rng.int(0, this.o.agents - 1);
        this.say(`fault: kill -9 agent mirror${i} (and its rsync)`);
        await hardKillAgent(c, i);
        await sleep(rng.int(200, 3_000));
        if (!this.stopped) c.startAgent(i);
        return;
      }
      case 'master': {
        this.say('fault: kill -9 master');
        await hardKillMaster(c);
        await sleep(rng.int(200, 2_000));
        if (!this.stopped) await c.startMaster();
        return;
      }
      case 'rsyncd': {
        this.say('fault: kill -9 the rsync daemon');
        await killRsyncDaemon(c);
        return;
      }
      case 'link': {
        const host = `mirror${rng.int(0, this.o.agents - 1)}`;
        const ms = rng.int(1_000, 8_000);
        this.say(`fault: ${host} link down for ${(ms / 1000).toFixed(1)} s`);
        lab.linkDown(host);
        try {
          await sleep(ms);
        } finally {
          if (!this.stopped) lab.linkUp(host);
        }
        return;
      }
    }
  }
}

/** Cluster options for wss:// and rsync over TLS, with a certificate for the master's address. */
function withTls(dir: string, address: string, o: SoakOptions): Parameters<typeof labCluster>[1] {
  const { cert, key } = selfSignedCert(dir, 'inosync-soak', `IP:${address},IP:127.0.0.1`);
  return {
    agents: o.agents,
    master: { reconcile: o.reconcile, tls: { cert, key } },
    agent: (_i, cl) => ({ master: { url: `wss://${cl.host}:${cl.masterPort}`, key: cl.masterKeyPub, ca: cert } }),
  };
}
