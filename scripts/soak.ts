// Soak: minutes of random churn on the origin while random faults hit the
// cluster (agents and the master killed with SIGKILL and restarted, a
// mirror's link cut and restored, the rsync daemon killed), then churn stops
// and every mirror must become identical to the origin.
//
// usage: npm run soak -- --minutes N [--seed S] [--agents N] [--reconcile S]
//        [--faults agent,master,rsyncd,link|none] [--tls] [--keep] [--trace]
// --tls serves wss:// and rsync over TLS (a certificate made with openssl).
// --keep leaves the cluster's directory (logs, trees) behind; --trace prints
// every churn operation.
// Exit 0: all trees identical. Exit 1: the differences are printed.
// Runs on network namespaces where it can (root, iproute2), else on loopback
// and says so.
import { parseArgs } from 'node:util';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../test/helpers/cluster.js';
import { Churn, Rng } from '../test/helpers/churn.js';
import { hardKillAgent, hardKillMaster, killRsyncDaemon, labCluster, rsyncTempFiles } from '../test/helpers/faults.js';
import { Lab } from '../test/helpers/netns.js';
import { selfSignedCert } from '../test/helpers/certs.js';
import { diffTrees, snapshotTree } from '../test/helpers/tree.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    seed: { type: 'string' },
    agents: { type: 'string', default: '3' },
    // 0: no periodic reconciliation, so events and fault recovery alone must converge.
    reconcile: { type: 'string', default: '0' },
    faults: { type: 'string', default: 'agent,master,rsyncd,link' },
    keep: { type: 'boolean', default: false },
    tls: { type: 'boolean', default: false },
    trace: { type: 'boolean', default: false },
  },
});

const minutes = Number(values.minutes);
const seed = values.seed === undefined ? randomInt(2 ** 31) : Number(values.seed);
const agents = Number(values.agents);
const reconcile = Number(values.reconcile);
const FAULTS = ['agent', 'master', 'rsyncd', 'link'];
const faultKinds = values.faults === 'none' ? [] : values.faults.split(',');
if (!(minutes > 0) || !Number.isInteger(seed) || !(agents >= 1) || !(reconcile >= 0) || faultKinds.some((k) => !FAULTS.includes(k))) {
  process.stderr.write('usage: soak --minutes N [--seed S] [--agents N] [--reconcile S] [--faults agent,master,rsyncd,link|none] [--tls] [--keep]\n');
  process.exit(2);
}

const started = Date.now();
const say = (msg: string): void => {
  process.stdout.write(`[soak +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

say(`seed ${seed} (rerun with --seed ${seed}), ${minutes} min, ${agents} agents, reconcile ${reconcile || 'off'}${values.tls ? ', TLS' : ''}`);
// Churn and faults draw from streams of their own, so each replays the same
// sequence for a seed; how they interleave still depends on timing.
const churnRng = new Rng(seed);
const rng = new Rng(seed ^ 0x5bd1e995);
const hosts = ['master', ...Array.from({ length: agents }, (_, i) => `mirror${i}`)];
const lab = await Lab.create(hosts);
say(`hosts on ${lab.label}${lab.fallback ? ` (${lab.fallback}); link faults are skipped` : ''}`);

let c: Cluster | null = null;
let exitCode = 1;
// Stopped from outside (a test timeout, ^C): nothing of the cluster may outlive us.
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    say(`stopped by ${sig}`);
    void (c?.cleanup() ?? Promise.resolve()).finally(() => {
      lab.closeSync();
      process.exit(1);
    });
  });
}
try {
  c = await labCluster(lab, values.tls ? withTls(lab.address('master')) : { agents, master: { reconcile } });
  await c.start();
  exitCode = await soak(c);
} catch (err) {
  say(`failed: ${(err as Error).stack ?? String(err)}`);
  exitCode = 1;
} finally {
  if (values.keep && c) process.env.INOSYNC_KEEP_TEST_DIRS = '1';
  await c?.cleanup();
  await lab.close();
}
say(exitCode === 0 ? 'PASS: every mirror is identical to the origin' : 'FAIL');
process.exit(exitCode);

/** Cluster options for wss:// and rsync over TLS, with a certificate for the master's address. */
function withTls(address: string): Parameters<typeof labCluster>[1] {
  const dir = mkdtempSync(join(tmpdir(), 'inosync-soak-tls-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const { cert, key } = selfSignedCert(dir, 'inosync-soak', `IP:${address},IP:127.0.0.1`);
  return {
    agents,
    master: { reconcile, tls: { cert, key } },
    agent: (_i, cl) => ({ master: { url: `wss://${cl.host}:${cl.masterPort}`, key: cl.masterKeyPub, ca: cert } }),
  };
}

async function soak(c: Cluster): Promise<number> {
  const churn = new Churn(c.origin(), churnRng, { maxEntries: 2500, onOp: values.trace ? (op) => say(`op ${op}`) : undefined });
  const faults: Record<string, number> = {};
  const until = Date.now() + minutes * 60_000;

  const churning = (async () => {
    while (Date.now() < until) {
      await churn.burst(churnRng.int(1, 40));
      await sleep(churnRng.int(0, 250));
    }
  })();

  const faulting = (async () => {
    // The first fault once there is something to sync, the last well before the end.
    await sleep(rng.int(3_000, 8_000));
    const kinds = faultKinds.filter((k) => k !== 'link' || lab.isolated);
    while (kinds.length > 0 && Date.now() < until - 5_000) {
      const kind = rng.pick(kinds);
      faults[kind] = (faults[kind] ?? 0) + 1;
      await inject(c, kind);
      await sleep(rng.int(3_000, 12_000));
    }
  })();

  await Promise.all([churning, faulting]);
  const s = churn.stats;
  say(`churn stopped: ${s.ops} operations (${s.created} created, ${s.written} written, ${s.renamed} renamed, ${s.deleted} deleted, ${s.dirs} dir trees, ${s.failed} raced)`);
  say(`faults: ${Object.entries(faults).map(([k, n]) => `${k} x${n}`).join(', ') || 'none'}`);

  const settleStart = Date.now();
  try {
    await c.waitConverged(undefined, 180_000);
  } catch {
    // The report below lists every difference, not just the first few.
  }
  const origin = await snapshotTree(c.origin());
  let failed = false;
  for (let i = 0; i < agents; i++) {
    const diffs = diffTrees(origin, await snapshotTree(c.mirror(i)), { names: ['origin', `mirror${i}`] });
    const temps = rsyncTempFiles(c.mirror(i));
    if (diffs.length === 0 && temps.length === 0) continue;
    failed = true;
    say(`mirror${i} differs from the origin in ${diffs.length} places:`);
    for (const d of diffs.slice(0, 200)) process.stdout.write(`  ${d}\n`);
    if (diffs.length > 200) process.stdout.write(`  ... and ${diffs.length - 200} more\n`);
    if (temps.length > 0) say(`mirror${i} holds rsync temporary files: ${temps.map((t) => JSON.stringify(t)).join(', ')}`);
  }
  if (failed) {
    process.stdout.write(`${c.logs(80)}\n`);
    return 1;
  }
  say(`converged ${((Date.now() - settleStart) / 1000).toFixed(1)} s after churn stopped; ${origin.size} entries identical on ${agents} mirrors`);
  return 0;
}

async function inject(c: Cluster, kind: string): Promise<void> {
  switch (kind) {
    case 'agent': {
      const i = rng.int(0, agents - 1);
      say(`fault: kill -9 agent mirror${i} (and its rsync)`);
      await hardKillAgent(c, i);
      await sleep(rng.int(200, 3_000));
      c.startAgent(i);
      return;
    }
    case 'master': {
      say('fault: kill -9 master');
      await hardKillMaster(c);
      await sleep(rng.int(200, 2_000));
      await c.startMaster();
      return;
    }
    case 'rsyncd': {
      say('fault: kill -9 the rsync daemon');
      await killRsyncDaemon(c);
      return;
    }
    case 'link': {
      const host = `mirror${rng.int(0, agents - 1)}`;
      const ms = rng.int(1_000, 8_000);
      say(`fault: ${host} link down for ${(ms / 1000).toFixed(1)} s`);
      lab.linkDown(host);
      try {
        await sleep(ms);
      } finally {
        lab.linkUp(host);
      }
      return;
    }
  }
}
