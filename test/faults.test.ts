// The real world, one fault at a time, against real processes: hard kills,
// a cut link, a full disk, a dead rsync daemon, too few inotify watches, and
// roots that vanish. Hosts live in network namespaces of their own where the
// machine allows it (see harness/netns.ts); every scenario ends with a
// complete comparison of each mirror with the origin.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';
import { Churn } from '../harness/churn.js';
import { Rng } from '../harness/rng.js';
import {
  bindMount, hardKillAgent, hardKillMaster, isMountPoint, killRsyncDaemon, labCluster, mountTmpfs, rsyncTempFiles, unmount, watchLimitPrefix,
  whyNoMounts, whyNoUserNamespaces,
} from '../harness/faults.js';
import { Lab } from '../harness/netns.js';
import { isAlive, rsyncClientsOf, rsyncDaemonOf } from '../harness/procs.js';
import { snapshotTree, assertTreesEqual } from '../harness/tree.js';

const HOSTS = ['master', 'mirror0', 'mirror1', 'mirror2'];
const lab = await Lab.create(HOSTS);
after(() => lab.close());
const mountSkip = whyNoMounts();
const canMount = mountSkip === null;
const userNsSkip = whyNoUserNamespaces();
const canUserNs = userNsSkip === null;

const since = (t0: number): string => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

function du(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      try {
        n += readFileSync(join(e.parentPath, e.name)).length;
      } catch {
        // renamed meanwhile
      }
    }
  }
  return n;
}

describe(`crashes (${lab.label})`, { timeout: 240_000 }, () => {
  let c: Cluster;

  before(async () => {
    // mirror0 pulls slowly, so a big transfer is still running when it is killed.
    c = await labCluster(lab, { agents: 3, agent: (i) => (i === 0 ? { rsync: { bwlimit: 10_000 } } : {}) });
    await c.start();
  });

  after(async () => {
    await c?.cleanup();
  });

  test('kill -9 of an agent in the middle of a 50 MB transfer: restarted, it converges without leftovers', async (t) => {
    await fs.mkdir(join(c.origin(), 'big'));
    for (let i = 0; i < 10; i++) await fs.writeFile(join(c.origin(), 'big', `blob${i}.bin`), randomBytes(5 * 1024 * 1024));
    const agentPid = c.agents[0]!.child.pid!;
    const big = join(c.mirror(0), 'big');
    // Mid-transfer, mid-file: some of it has landed, and rsync is writing a temporary file.
    const midway = (): boolean => existsSync(big) && du(big) > 8 * 2 ** 20 && rsyncTempFiles(big).length > 0;
    await waitFor(midway, 30_000, 'mirror0 to be in the middle of the transfer', () => c.logs());
    assert.ok(rsyncClientsOf(agentPid).length > 0, 'rsync is running');
    let landed = 0;
    let temps: string[] = [];
    try {
      // Frozen before it is judged, so the kill hits the moment that was seen.
      await hardKillAgent(c, 0, () => {
        if (!midway()) return false;
        landed = du(big);
        temps = rsyncTempFiles(c.mirror(0));
        return true;
      });
      assert.ok(landed < 50 * 2 ** 20, `the transfer had finished already (${landed} bytes)`);
      assert.deepEqual(rsyncTempFiles(c.mirror(0)), temps, 'the kill left the temporary files as they were');
    } finally {
      // Whatever failed above, the tests after this one need all three agents.
      if (!c.agents[0]) c.startAgent(0);
    }
    const t0 = Date.now();
    await c.waitConverged(undefined, 90_000);
    t.diagnostic(`killed with ${(landed / 2 ** 20).toFixed(1)} MiB landed and ${temps.length} rsync temp file(s) left; converged ${since(t0)} after the restart`);
    assert.deepEqual(rsyncTempFiles(c.mirror(0)), [], `temporary files left (there were ${temps.length} after the kill)`);
    await fs.rm(join(c.origin(), 'big'), { recursive: true });
    await c.waitConverged();
  });

  test('kill -9 of the master during a burst of changes: restarted, the agents converge', async (t) => {
    const churn = new Churn(c.origin(), new Rng(1));
    await churn.burst(150);
    const { daemon } = await hardKillMaster(c);
    // Its rsync daemon dies with it (parent-death signal) instead of holding the port.
    assert.ok(daemon !== null, 'the master ran an rsync daemon');
    await waitFor(() => !isAlive(daemon), 5_000, 'the rsync daemon to die with its master');
    await churn.burst(150);
    const t0 = Date.now();
    await c.startMaster();
    await churn.burst(50);
    await c.waitConverged(undefined, 60_000);
    t.diagnostic(`converged ${since(t0)} after the restart`);
  });

  test('a link cut during a burst: the others converge meanwhile, the cut node once it is back', { skip: lab.isolated ? false : `no link to cut: ${lab.fallback}` }, async (t) => {
    await c.waitConverged();
    lab.linkDown('mirror2');
    const down = Date.now();
    try {
      const churn = new Churn(c.origin(), new Rng(2));
      await churn.burst(200);
      await c.waitConverged([0, 1], 60_000);
      // Still cut: mirror2 cannot have these changes.
      const o = await snapshotTree(c.origin());
      let differs = true;
      try {
        assertTreesEqual(o, await snapshotTree(c.mirror(2)));
        differs = false;
      } catch {
        // expected
      }
      assert.ok(differs, 'mirror2 converged through a cut link');
    } finally {
      lab.linkUp('mirror2');
    }
    const up = Date.now();
    await c.waitConverged(2, 90_000);
    t.diagnostic(`link down for ${((up - down) / 1000).toFixed(1)} s (the others converged meanwhile); mirror2 converged ${since(up)} after it came back`);
    await c.waitConverged();
  });

  test('the rsync daemon killed under the master: restarted, syncs continue', async (t) => {
    const churn = new Churn(c.origin(), new Rng(3));
    await churn.burst(50);
    const killed = await killRsyncDaemon(c);
    const t0 = Date.now();
    await churn.burst(50);
    await waitFor(
      async () => {
        const s = await c.fetchStatus();
        return s !== null && s.rsyncd.running && s.rsyncd.restarts >= 1;
      },
      15_000,
      'the rsync daemon to be restarted',
    );
    const now = rsyncDaemonOf(c.master!.child.pid!);
    assert.ok(now && now.pid !== killed, 'a new daemon runs');
    await c.waitConverged(undefined, 60_000);
    t.diagnostic(`converged ${since(t0)} after the kill`);
  });
});

describe(`full disks and deletion safety (${lab.label})`, { timeout: 240_000 }, () => {
  let c: Cluster;
  const mounts: string[] = [];
  const MARKER = '.inosync-marker';
  const store = () => join(c.dir, 'mnt-store');

  before(async () => {
    c = await labCluster(lab, {
      agents: 3,
      paths: [{ name: 'www', marker: MARKER }, { name: 'mnt' }],
      // mirror2 refuses to delete more than 5 entries in one run.
      agent: (i, cl) => (i === 2 ? { paths: [{ name: 'www', target: cl.mirror(2, 'www'), maxDelete: 5 }, { name: 'mnt', target: cl.mirror(2, 'mnt') }] } : {}),
    });
    await fs.writeFile(join(c.origin('www'), MARKER), 'the source is mounted\n');
    await fs.writeFile(join(c.origin('www'), 'index.html'), '<h1>hello</h1>\n');
    if (canMount) {
      // mirror1's www target is a 2 MiB disk.
      mountTmpfs(c.mirror(1, 'www'), '2m');
      mounts.push(c.mirror(1, 'www'));
      // The mnt root is a filesystem of its own, to be unmounted under the master.
      await fs.mkdir(store());
      mountTmpfs(store(), '64m');
      mounts.push(store());
      bindMount(store(), c.origin('mnt'));
      mounts.push(c.origin('mnt'));
      await fs.writeFile(join(c.origin('mnt'), 'data.txt'), 'on the mounted filesystem\n');
    }
    await c.start();
    await c.waitConverged();
  });

  after(async () => {
    await c?.stopMaster('SIGKILL');
    for (const i of [0, 1, 2]) await c?.stopAgent(i, 'SIGKILL');
    for (const m of mounts.reverse()) if (isMountPoint(m)) unmount(m);
    await c?.cleanup();
  });

  const nodeOf = async (i: number) => (await c.fetchStatus())?.nodes.find((n) => n.name === c.agentName(i));
  const pathOf = async (name: string) => (await c.fetchStatus())?.paths.find((p) => p.name === name);

  test('a mirror whose disk is full reports an error, the others carry on, and it converges once space is freed', { skip: canMount ? false : mountSkip }, async () => {
    await fs.mkdir(join(c.origin(), 'fill'));
    for (let i = 0; i < 6; i++) await fs.writeFile(join(c.origin(), 'fill', `part${i}.bin`), randomBytes(600 * 1024));
    await c.waitConverged([0, 2], 30_000);
    await waitFor(async () => (await nodeOf(1))?.state === 'error', 30_000, 'mirror1 to report an error', async () => JSON.stringify(await nodeOf(1), null, 1));
    const n = (await nodeOf(1))!;
    assert.match(n.lastError?.message ?? '', /No space left on device|write failed|Error in file I\/O/i);
    // Nobody intervenes on the mirror: freeing space on the origin is enough.
    for (let i = 0; i < 4; i++) await fs.rm(join(c.origin(), 'fill', `part${i}.bin`));
    await c.waitConverged(undefined, 90_000);
    await waitFor(async () => (await nodeOf(1))?.state === 'idle', 30_000, 'mirror1 to be idle again');
    await fs.rm(join(c.origin(), 'fill'), { recursive: true });
  });

  test('maxDelete: 20 deletions stop at the limit on that mirror, which reports it; the others apply them', async () => {
    await fs.mkdir(join(c.origin(), 'many'));
    for (let i = 0; i < 20; i++) await fs.writeFile(join(c.origin(), 'many', `f${i}`), `file ${i}\n`);
    await c.waitConverged();
    await c.waitIdle();
    // The limit is per rsync run, and file-by-file deletions may be spread
    // over several batches; a directory moved away is one event, one run.
    await fs.rename(join(c.origin(), 'many'), join(c.dir, 'many-gone'));
    await c.waitConverged([0, 1], 30_000);
    await waitFor(async () => /max-delete|deletion/i.test((await nodeOf(2))?.lastError?.message ?? ''), 30_000, 'mirror2 to report the deletion limit', async () => JSON.stringify(await nodeOf(2), null, 1));
    const n = (await nodeOf(2))!;
    assert.equal(n.state, 'error');
    // rsync deletes up to the limit, then nothing more.
    const left = readdirSync(join(c.mirror(2), 'many')).length;
    assert.ok(left >= 15, `only ${left} of 20 files left on mirror2`);
    // The deletion was a mistake: putting the files back brings every mirror back.
    await fs.rename(join(c.dir, 'many-gone'), join(c.origin(), 'many'));
    await c.waitConverged(undefined, 30_000);
  });

  test('the marker file removed: the path pauses, mirrors keep their content, and it resumes when the marker is back', async (t) => {
    await settled();
    const before_ = await snapshots();
    let t0 = Date.now();
    await fs.rm(join(c.origin(), MARKER));
    const pausedAfter = await paused('www', t0);
    assert.match((await pathOf('www'))!.paused!, /marker/);
    // Changes meanwhile (an unmounted source looks like everything gone) do not propagate.
    await fs.rm(join(c.origin(), 'index.html'));
    await fs.writeFile(join(c.origin(), 'while-paused.txt'), 'x');
    await unchanged(before_);
    assert.match(readFileSync(c.master!.log, 'utf8'), /path paused.*marker file/);
    // The other path is not affected.
    await fs.writeFile(join(c.origin('mnt'), 'unaffected.txt'), 'y');
    await waitFor(() => [0, 1, 2].every((i) => existsSync(join(c.mirror(i, 'mnt'), 'unaffected.txt'))), 10_000, 'mnt to sync while www is paused');
    t0 = Date.now();
    await fs.writeFile(join(c.origin(), MARKER), 'back\n');
    t.diagnostic(`paused ${pausedAfter} after the marker went, resumed ${await resumed('www', t0)} after it was back`);
    await c.waitConverged(undefined, 30_000);
    await liveAgain();
  });

  const snapshots = (path = 'www') => Promise.all([0, 1, 2].map((i) => snapshotTree(c.mirror(i, path))));

  /** A second after the fault, no mirror has changed at all. */
  async function unchanged(before_: Awaited<ReturnType<typeof snapshots>>, path = 'www'): Promise<void> {
    await new Promise((r) => setTimeout(r, 1000));
    const now = await snapshots(path);
    now.forEach((snap, i) => assertTreesEqual(snap, before_[i]!, { names: [`mirror${i} now`, 'before the fault'] }));
  }

  /** Until the path pauses; returns how long that took. */
  async function paused(path: string, t0: number): Promise<string> {
    await waitFor(async () => (await pathOf(path))?.paused != null, 10_000, `${path} to pause`);
    return since(t0);
  }

  async function resumed(path: string, t0: number): Promise<string> {
    await waitFor(async () => (await pathOf(path))?.paused === null, 10_000, `${path} to resume`);
    return since(t0);
  }

  /** Converged, and no sync still running that could touch a mirror (a directory's mtime) later. */
  async function settled(): Promise<void> {
    await c.waitConverged(undefined, 30_000);
    await c.waitIdle();
    await new Promise((r) => setTimeout(r, 300));
    await c.waitIdle();
  }

  /** After a resume the watcher must see changes again, not only the full sync. */
  async function liveAgain(): Promise<void> {
    await c.waitIdle();
    const name = `live-${Date.now()}.txt`;
    await fs.writeFile(join(c.origin(), name), 'seen by the watcher');
    await waitFor(() => existsSync(join(c.mirror(0), name)), 10_000, `${name} to reach mirror0 through an event`, () => c.logs());
    await c.waitConverged();
  }

  test('the watched root renamed away: paused, mirrors keep everything; renamed back, it resumes', async (t) => {
    await settled();
    const before_ = await snapshots();
    const away = `${c.origin()}.away`;
    let t0 = Date.now();
    await fs.rename(c.origin(), away);
    const pausedAfter = await paused('www', t0);
    await unchanged(before_);
    t0 = Date.now();
    await fs.rename(away, c.origin());
    t.diagnostic(`paused ${pausedAfter} after the rename, resumed ${await resumed('www', t0)} after the rename back`);
    await c.waitConverged(undefined, 30_000);
    await liveAgain();
  });

  test('the watched root deleted: paused, mirrors keep everything; restored, it resumes', async (t) => {
    // Enough that `rm -rf` takes a while: its file deletions come first, the root's last.
    for (let d = 0; d < 10; d++) {
      await fs.mkdir(join(c.origin(), 'bulk', `d${d}`), { recursive: true });
      for (let f = 0; f < 30; f++) await fs.writeFile(join(c.origin(), 'bulk', `d${d}`, `f${f}`), `${d}/${f}\n`);
    }
    await settled();
    const before_ = await snapshots();
    const backup = join(c.dir, 'www-backup');
    await fs.cp(c.origin(), backup, { recursive: true, preserveTimestamps: true });
    let t0 = Date.now();
    await fs.rm(c.origin(), { recursive: true });
    const pausedAfter = await paused('www', t0);
    await unchanged(before_);
    t0 = Date.now();
    await fs.cp(backup, c.origin(), { recursive: true, preserveTimestamps: true });
    t.diagnostic(`paused ${pausedAfter} after rm -rf, resumed ${await resumed('www', t0)} after the restore`);
    await c.waitConverged(undefined, 30_000);
    await liveAgain();
  });

  test('a tmpfs root unmounted under the master: paused, mirrors keep everything; mounted again, it resumes', { skip: canMount ? false : mountSkip }, async (t) => {
    await settled();
    const before_ = await snapshots('mnt');
    assert.ok(before_[0]!.has('data.txt'));
    let t0 = Date.now();
    unmount(c.origin('mnt'));
    const pausedAfter = await paused('mnt', t0);
    assert.match((await pathOf('mnt'))!.paused!, /another filesystem|different directory|unmounted/);
    await unchanged(before_, 'mnt');
    t0 = Date.now();
    bindMount(store(), c.origin('mnt'));
    t.diagnostic(`paused ${pausedAfter} after the unmount, resumed ${await resumed('mnt', t0)} after the mount`);
    // Watched again, not only fully synced once.
    await c.waitIdle();
    await fs.writeFile(join(c.origin('mnt'), 'after-remount.txt'), 'z');
    await waitFor(() => existsSync(join(c.mirror(0, 'mnt'), 'after-remount.txt')), 10_000, 'a change after the remount to arrive');
    await c.waitConverged(undefined, 30_000);
  });
});

describe(`too few inotify watches, and reconciliation (${lab.label})`, { timeout: 120_000 }, () => {
  let c: Cluster;
  const DIRS = 300;
  const LIMIT = 100;

  before(async () => {
    c = await labCluster(lab, {
      agents: 2,
      master: { reconcile: 2 },
      // The master alone runs in a user namespace whose inotify limit is lower than the tree needs.
      wrap: (host) => (host === 'master' && canUserNs ? watchLimitPrefix(c.dir, LIMIT) : []),
    });
    for (let d = 0; d < DIRS; d++) {
      await fs.mkdir(join(c.origin(), `d${d}`));
      await fs.writeFile(join(c.origin(), `d${d}`, 'before.txt'), `${d}\n`);
    }
    await c.start();
    await c.waitConverged(undefined, 30_000);
  });

  after(async () => {
    await c?.cleanup();
  });

  test('max_user_watches too small: reported in the log, status and metrics, and nothing is missed', { skip: canUserNs ? false : userNsSkip }, async () => {
    await waitFor(async () => ((await c.fetchStatus())?.paths[0]?.watchErrors ?? 0) > 0, 15_000, 'a watch error in the status');
    const metrics = await c.fetchText('/metrics');
    const m = /^inosync_watch_errors_total\{path="www"\} (\d+)$/m.exec(metrics ?? '');
    assert.ok(m && Number(m[1]) > 0, `inosync_watch_errors_total in:\n${metrics}`);
    assert.match(readFileSync(c.master!.log, 'utf8'), /inotify watch limit reached/);
    // Most of these directories are not watched: only the full syncs bring their changes.
    for (let d = 0; d < DIRS; d++) await fs.writeFile(join(c.origin(), `d${d}`, 'after.txt'), `changed ${d}\n`);
    await c.waitConverged(undefined, 30_000);
  });

  test('periodic reconciliation repairs a mirror changed by hand, which no event on the origin tells', async () => {
    await c.waitConverged(undefined, 30_000);
    // Changed behind inosync's back: no event on the origin will ever mention these.
    await fs.writeFile(join(c.mirror(0), 'd1', 'before.txt'), 'tampered with on the mirror');
    await fs.rm(join(c.mirror(1), 'd2', 'before.txt'));
    await fs.writeFile(join(c.mirror(0), 'stray.txt'), 'not on the origin');
    await c.waitConverged(undefined, 30_000);
    assert.equal(readFileSync(join(c.mirror(0), 'd1', 'before.txt'), 'utf8'), '1\n');
  });
});

// inotify keeps fs.inotify.max_queued_events events per watcher; what comes
// after is dropped, with one overflow notice that libuv swallows. A master
// that cannot read for a while (here: stopped) must notice from the size of
// what it drains, and resync the path, since nothing else would tell it.
const QUEUE_MAX = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim());
const overflowSkip = QUEUE_MAX > 200_000 ? `fs.inotify.max_queued_events is ${QUEUE_MAX}: too many files to overflow it in a test` : false;

describe(`inotify queue overflow (${lab.label})`, { timeout: 180_000 }, () => {
  let c: Cluster;

  before(async () => {
    // No reconciliation: only the overflow's full sync can bring what the dropped events told.
    c = await labCluster(lab, { agents: 2, master: { reconcile: 0 } });
    await fs.mkdir(join(c.origin(), 'storm'));
    await fs.mkdir(join(c.origin(), 'quiet'));
    await fs.writeFile(join(c.origin(), 'quiet', 'late.txt'), 'before\n');
    await c.start();
    await c.waitConverged(undefined, 30_000);
  });

  after(async () => {
    await c?.cleanup();
  });

  test('an overflow under a storm is reported in the log and status, and a full sync brings what was dropped', { skip: overflowSkip }, async (t) => {
    const pid = c.master!.child.pid!;
    process.kill(pid, 'SIGSTOP');
    try {
      // More events than the queue holds, then changes whose events are dropped for certain.
      for (let i = 0; i < QUEUE_MAX + 2000; i++) await fs.writeFile(join(c.origin(), 'storm', `f${i}`), '');
      await fs.writeFile(join(c.origin(), 'quiet', 'late.txt'), 'after the overflow\n');
      await fs.writeFile(join(c.origin(), 'quiet', 'new.txt'), 'also dropped\n');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor(async () => ((await c.fetchStatus())?.paths[0]?.lastWatchProblem?.kind ?? null) === 'overflow', 30_000, 'the overflow in the status', () => c.logs());
    const problem = (await c.fetchStatus())!.paths[0]!.lastWatchProblem!;
    assert.match(problem.message, /overflowed.*max_queued_events/);
    assert.match(readFileSync(c.master!.log, 'utf8'), /falling back to full syncs.*overflow/);
    await c.waitConverged(undefined, 120_000);
    for (let i = 0; i < 2; i++) assert.equal(readFileSync(join(c.mirror(i), 'quiet', 'late.txt'), 'utf8'), 'after the overflow\n');
    t.diagnostic(`${QUEUE_MAX + 2000} files created while the master was stopped (max_queued_events ${QUEUE_MAX})`);
  });
});
