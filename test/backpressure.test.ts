// Backpressure with real processes: a flood of events becomes a bounded
// number of rsync runs, a stalled agent costs the master bounded memory and
// holds nobody else up, batches that queue behind a running rsync are merged,
// and a paced node converges in fewer runs. Who is sent which batch, and when,
// is the dispatcher's (test/dispatcher.test.ts, test/master-inprocess.test.ts);
// here the figures come from the master's /status: an agent reports one
// result per rsync run (one path per cluster here), so a node's syncs count
// its runs.
//
// The master watches with the default watcher (one inotify watch per
// directory); chokidar takes one per file, which for 100,000 files means ~1 GB
// of master RSS and 100,000 inotify watches, against a per-user limit
// (max_user_watches) that is often not much higher and shared with every
// other test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, statfsSync } from 'node:fs';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { WINDOW } from '../src/master/master.js';
import type { MasterStatus } from '../src/protocol/status.js';
import { PACE_FACTOR, PACE_MIN_RUN_MS } from '../src/master/pacing.js';
import type { NodeState, NodeStatus } from '../src/protocol/status.js';
import { Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';
import { assertTreesEqual, snapshotTree } from '../harness/tree.js';

const MB = 1024 * 1024;
/** What the master's RSS must stay under, whatever it is sent or owes. */
const RSS_BOUND = 300 * MB;

// --- logs -------------------------------------------------------------------

/** Where a log ends now: lines after it are what happens next. */
function mark(log: string): number {
  try {
    return statSync(log).size;
  } catch {
    return 0;
  }
}

function linesSince(log: string, offset: number): string[] {
  return readFileSync(log).subarray(offset).toString('utf8').split('\n');
}

/** Results a node reported, each one rsync run for a single-path cluster: what `syncs` counts. */
function runsOf(s: MasterStatus, name: string): number {
  const n = nodeOf(s, name);
  return n.syncs.ok + n.syncs.failed;
}

interface BatchLine {
  seq: number;
  to: string[];
  entries: string;
}

/**
 * The master's `DEBUG batch seq=N to=[...] entries=...` lines: how many
 * batches each node was sent, which /status does not count.
 */
function batchesSince(log: string, offset: number): BatchLine[] {
  const out: BatchLine[] = [];
  for (const l of linesSince(log, offset)) {
    const m = / DEBUG batch .*\bseq=(\d+) to=(\[[^\]]*\]) entries=(.*)$/.exec(l);
    if (!m) continue;
    const entries = m[3]!.startsWith('"') ? (JSON.parse(m[3]!) as string) : m[3]!;
    out.push({ seq: Number(m[1]), to: JSON.parse(m[2]!) as string[], entries });
  }
  return out;
}

// --- the master process ---------------------------------------------------

/** VmRSS and VmHWM (the peak since start) of a process, in bytes. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

// --- trees ------------------------------------------------------------------

/**
 * Every difference between origin and mirror as rsync itemizes it: type,
 * content (checksummed), mode, owner, group, mtime to the nanosecond, and
 * entries only on one side. The yardstick for trees of 100,000 files, where
 * snapshotTree, hashing one file at a time, takes a minute per tree. `sub`
 * limits it to one directory of the path.
 */
function differences(origin: string, mirror: string, sub = ''): Promise<string[]> {
  const dir = (root: string): string => (sub ? join(root, sub) : root) + '/';
  return new Promise((resolve, reject) => {
    const child = spawn('rsync', ['-rlptgoD', '--dry-run', '--checksum', '--delete', '--itemize-changes', '--modify-window=-1', dir(origin), dir(mirror)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const found = out.split('\n').filter(Boolean);
      if (code === 0) return resolve(found);
      // 23, 24: the mirror is missing the directory, or a sync is changing it under us.
      if (code === 23 || code === 24) return resolve([...found, `(rsync exit ${code}: ${err.trim().split('\n')[0]})`]);
      reject(new Error(`rsync compare exited ${code}: ${err}`));
    });
  });
}

async function waitIdentical(c: Cluster, mirrors: number[], timeoutMs: number, sub = ''): Promise<void> {
  let last: string[] = [];
  await waitFor(
    async () => {
      for (const i of mirrors) {
        last = (await differences(c.origin(), c.mirror(i), sub)).map((d) => `mirror${i}: ${d}`);
        if (last.length > 0) return false;
      }
      return true;
    },
    timeoutMs,
    `mirrors ${mirrors.join(',')} identical to the origin${sub ? ` in ${sub}` : ''}`,
    () => `${last.slice(0, 10).join('\n')}${last.length > 10 ? `\n... ${last.length - 10} more` : ''}\n${c.logs()}`,
  );
}

/** Regular files one level below `dir`: cheap enough to poll on a big tree. */
async function countFiles(dir: string): Promise<number> {
  let n = 0;
  try {
    for (const d of await fs.readdir(dir)) n += (await fs.readdir(join(dir, d))).length;
  } catch {
    // not there yet
  }
  return n;
}

/** `count` files named `${prefix}N` spread over directories d0..d{dirs-1} of `base`, many writes at once, as a busy site would. */
async function createFiles(base: string, dirs: number, count: number, prefix: string): Promise<void> {
  for (let d = 0; d < dirs; d++) await fs.mkdir(join(base, `d${d}`), { recursive: true });
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < count) {
        const i = next++;
        await fs.writeFile(join(base, `d${i % dirs}`, `${prefix}${i}`), `${prefix} ${i}\n`);
      }
    }),
  );
}

function nodeOf(s: MasterStatus, name: string): NodeStatus {
  const n = s.nodes.find((x) => x.name === name);
  assert.ok(n, `no node ${name}`);
  return n;
}

async function waitState(c: Cluster, name: string, states: NodeState[], timeoutMs: number): Promise<MasterStatus> {
  let last: MasterStatus | null = null;
  await waitFor(
    async () => {
      last = await c.fetchStatus();
      return last !== null && states.includes(nodeOf(last, name).state);
    },
    timeoutMs,
    `${name} ${states.join(' or ')}`,
    () => `${JSON.stringify(last?.nodes, null, 1)}\n${c.logs()}`,
  );
  return last!;
}

// --- a flood, and a stalled agent -------------------------------------------

/**
 * A cluster made under /dev/shm when that tmpfs has room: removing 400,000
 * files from a filesystem mounted with `discard` waits on the disk for every
 * freed block (minutes on the machines these tests run on), where tmpfs does
 * it in memory in seconds. The flood's three trees take over a GB of it
 * (every small file costs a page) for a few minutes.
 */
function clusterOnTmpfs(opts: ConstructorParameters<typeof Cluster>[0]): Cluster {
  let roomy = false;
  try {
    const st = statfsSync('/dev/shm');
    roomy = st.bavail * st.bsize >= 4 * 1024 ** 3;
  } catch {
    // no /dev/shm: the default temporary directory it is
  }
  const saved = process.env.TMPDIR;
  if (roomy) process.env.TMPDIR = '/dev/shm';
  try {
    return new Cluster(opts);
  } finally {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  }
}

const MAX_PENDING = 10_000;

describe('a flood of creates', { timeout: 600_000 }, () => {
  let c: Cluster;

  before(async () => {
    c = await clusterOnTmpfs({ agents: 2, master: { maxPending: MAX_PENDING } }).setup();
    await c.start();
  });

  after(async () => {
    await c?.cleanup();
  });

  test('100,000 files created at once: a bounded number of rsync runs, identical trees', async (t) => {
    const before = (await c.fetchStatus())!;
    const flood = (root: string): string => join(root, 'flood');
    let at = performance.now();
    await createFiles(flood(c.origin()), 400, 100_000, 'f');
    const writing = performance.now() - at;
    at = performance.now();
    // Counting first: comparing 100,000 files over and over would slow the very sync it waits for.
    await waitFor(async () => (await countFiles(flood(c.mirror(0)))) === 100_000 && (await countFiles(flood(c.mirror(1)))) === 100_000, 600_000, '100,000 files on both mirrors', () => c.logs());
    const arriving = performance.now() - at;
    await waitIdentical(c, [0, 1], 300_000);
    const status = await c.waitIdle(120_000);
    // Spot checks with the strict yardstick, mtimes of files and directories included.
    for (const d of ['d0', 'd199', 'd399']) {
      const o = await snapshotTree(join(flood(c.origin()), d));
      for (const i of [0, 1]) assertTreesEqual(await snapshotTree(join(flood(c.mirror(i)), d)), o, { names: [`mirror${i}`, 'origin'] });
    }
    const runs = c.agents.map((_, i) => runsOf(status, c.agentName(i)) - runsOf(before, c.agentName(i)));
    const mem = memoryOf(c.master!.child.pid!);
    t.diagnostic(`written in ${Math.round(writing / 1000)} s, on both mirrors ${Math.round(arriving / 1000)} s later`);
    t.diagnostic(`rsync runs per agent: ${runs.join(', ')}; master batches: ${status.batches - before.batches}; master RSS ${Math.round(mem.rss / MB)} MB, peak ${Math.round(mem.peak / MB)} MB`);
    for (const [i, r] of runs.entries()) assert.ok(r >= 1 && r <= 20, `mirror${i}: 100,000 files took ${r} rsync runs`);
    assert.ok(mem.peak < RSS_BOUND, `master peak RSS ${Math.round(mem.peak / MB)} MB`);
  });

});

describe('a stalled agent', { timeout: 600_000 }, () => {
  let c: Cluster;

  before(async () => {
    c = await clusterOnTmpfs({ agents: 2, master: { maxPending: MAX_PENDING } }).setup();
    await c.start();
  });

  after(async () => {
    await c?.cleanup();
  });

  test('a stalled agent costs bounded memory, holds nobody up, and is disconnected; it catches up when it runs again', async (t) => {
    const stalled = c.agents[1]!;
    const name = c.agentName(1);
    const masterPid = c.master!.child.pid!;
    const DIRS = 50;
    // Directories both mirrors have already: what follows is one entry per
    // file, not a new tree that covers it all.
    for (let d = 0; d < DIRS; d++) await fs.mkdir(join(c.origin(), 'churn', `d${d}`), { recursive: true });
    await waitIdentical(c, [0, 1], 60_000, 'churn');
    await c.waitIdle(60_000);
    assert.ok(stalled.child.kill('SIGSTOP'));
    let resumed = false;
    try {
      const ROUNDS = 3;
      const PER_ROUND = 10_000;
      const seen = new Set<NodeState>();
      let maxPending = 0;
      for (let r = 0; r < ROUNDS; r++) {
        await createFiles(join(c.origin(), 'churn'), DIRS, PER_ROUND, `r${r}-`);
        // (a) the running agent keeps up, round after round
        await waitIdentical(c, [0], 120_000, 'churn');
        // (b) the master's memory, and what it owes the stalled node, stay bounded
        const mem = memoryOf(masterPid);
        const s = (await c.fetchStatus())!;
        const n = nodeOf(s, name);
        seen.add(n.state);
        maxPending = Math.max(maxPending, n.pending);
        t.diagnostic(`round ${r}: ${name} ${n.state}, pending ${n.pending}, in flight ${n.inFlight}; master RSS ${Math.round(mem.rss / MB)} MB`);
        assert.ok(mem.rss < RSS_BOUND, `round ${r}: master RSS ${Math.round(mem.rss / MB)} MB`);
        // While connected, up to WINDOW batches may be in flight on top of
        // what is owed; each holds at most maxPending entries per path.
        const bound = n.connected ? (WINDOW + 1) * MAX_PENDING : MAX_PENDING;
        assert.ok(n.pending <= bound, `round ${r}: ${n.pending} pending for ${name} (${n.state}), bound ${bound}`);
      }
      // (c) the master gives up on a peer that answers no heartbeat
      const s = await waitState(c, name, ['disconnected'], 60_000);
      const n = nodeOf(s, name);
      assert.equal(n.inFlight, 0);
      assert.ok(n.pending >= 1 && n.pending <= MAX_PENDING, `${n.pending} pending once disconnected`);
      assert.ok(maxPending > 1, 'the churn reached the stalled node as entries to keep');
      assert.equal(nodeOf(s, c.agentName(0)).state, 'idle');
      const peak = memoryOf(masterPid).peak;
      t.diagnostic(`${name} states seen: ${[...seen].join(', ')}; max pending ${maxPending}; master peak RSS ${Math.round(peak / MB)} MB`);
      assert.ok(peak < RSS_BOUND, `master peak RSS ${Math.round(peak / MB)} MB`);
      assert.equal(stalled.child.exitCode, null, 'the stalled agent is still there, only stopped');
      stalled.child.kill('SIGCONT');
      resumed = true;
      await waitIdentical(c, [0, 1], 300_000, 'churn');
      await c.waitIdle(60_000);
    } finally {
      if (!resumed) stalled.child.kill('SIGCONT');
    }
  });
});

// --- merging ----------------------------------------------------------------

describe('merged batches', { timeout: 300_000 }, () => {
  let c: Cluster;
  let gate = '';

  before(async () => {
    // mirror2 pulls at 1 KiB/s through an rsync that waits while a gate file
    // exists: a node that falls behind for as long as the test says, while
    // its agent stays connected and answers heartbeats.
    c = new Cluster({
      agents: 3,
      agent: (i) => (i === 2 ? { rsync: { bwlimit: 1, binary: join(c.dir, 'gated-rsync') } } : {}),
    });
    gate = join(c.dir, 'gate');
    await fs.writeFile(join(c.dir, 'gated-rsync'), `#!/bin/sh\nwhile [ -e '${gate}' ]; do sleep 0.02; done\nexec rsync "$@"\n`, { mode: 0o755 });
    await c.setup();
    await c.start();
  });

  after(async () => {
    await fs.rm(gate, { force: true });
    await c?.cleanup();
  });

  test('batches that arrive while rsync runs are merged: fewer runs than batches', async (t) => {
    const masterLog = mark(c.master!.log);
    const before = (await c.fetchStatus())!;
    await fs.mkdir(join(c.origin(), 'quick'));
    for (let i = 0; i < 50; i++) {
      await fs.writeFile(join(c.origin(), 'quick', `q${i}.txt`), `change ${i}\n`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await c.waitConverged(undefined, 60_000);
    const after_ = await c.waitIdle(60_000);
    const batches = after_.batches - before.batches;
    const lines = batchesSince(c.master!.log, masterLog);
    const runs = c.agents.map((_, i) => runsOf(after_, c.agentName(i)) - runsOf(before, c.agentName(i)));
    const received = c.agents.map((_, i) => lines.filter((b) => b.to.includes(c.agentName(i))).length);
    t.diagnostic(`master batches ${batches}; batches received per agent: ${received.join(', ')}; rsync runs per agent: ${runs.join(', ')}`);
    assert.equal(lines.length, batches, 'one log line per batch');
    for (let i = 0; i < c.agentCount; i++) {
      assert.ok(runs[i]! >= 1, `mirror${i} ran rsync`);
      assert.ok(runs[i]! <= received[i]!, `mirror${i}: ${runs[i]} runs for ${received[i]} batches`);
    }
    assert.ok(runs[2]! < received[2]!, `the slow mirror2 merged nothing: ${runs[2]} runs for ${received[2]} batches`);
    assert.ok(runs.every((r) => r < batches), `runs ${runs.join(', ')} for ${batches} batches`);
  });

  // Who shares which batch and what the catch-up carries is pinned, frame by
  // frame, in test/master-inprocess.test.ts; here, real agents behind a real
  // held-back rsync, and the figures /status shows.
  test('a node that lags gets its window full, then catches up in few runs while the others keep up', async (t) => {
    const m2 = c.agentName(2);
    const ROUNDS = WINDOW + 2;
    await fs.mkdir(join(c.origin(), 'lag'));
    await c.waitConverged();
    const before = await c.waitIdle(30_000);
    await fs.writeFile(gate, '');
    try {
      // One batch per round: each waits until the others have it.
      for (let r = 1; r <= ROUNDS; r++) {
        await fs.writeFile(join(c.origin(), 'lag', `r${r}.txt`), `round ${r}\n`);
        await c.waitConverged([0, 1]);
      }
      // The others are not held up.
      const s = await c.waitIdle(30_000, [0, 1]);
      const n = nodeOf(s, m2);
      t.diagnostic(`held back: ${m2} ${n.state}, ${n.inFlight} batches in flight, ${n.pending} changes pending`);
      assert.equal(n.state, 'syncing');
      assert.equal(n.inFlight, WINDOW, 'a full window in flight');
      assert.ok(n.pending > n.inFlight, 'and more owed than sent');
    } finally {
      await fs.rm(gate, { force: true });
    }
    await c.waitConverged(undefined, 60_000);
    const after_ = await c.waitIdle(30_000);
    // The agent merged the window that queued behind its held-back run:
    // one run for the first batch, one for the rest of the window, one for the catch-up.
    const runs = runsOf(after_, m2) - runsOf(before, m2);
    t.diagnostic(`${m2}: ${WINDOW + 1} batches, ${runs} rsync runs`);
    assert.ok(runs >= 1 && runs <= 3, `${m2} needed ${runs} rsync runs for ${WINDOW + 1} batches`);
  });
});

// --- pacing -------------------------------------------------------------------

describe('a node behind a busy origin', { timeout: 300_000 }, () => {
  let c: Cluster;
  /** every rsync run of the agent takes at least this long: long enough to be paced */
  const RUN_MS = PACE_MIN_RUN_MS + 100;

  before(async () => {
    c = new Cluster({ agents: 1, agent: () => ({ rsync: { binary: join(c.dir, 'slow-rsync') } }) });
    await fs.writeFile(join(c.dir, 'slow-rsync'), `#!/bin/sh\nsleep ${RUN_MS / 1000}\nexec rsync "$@"\n`, { mode: 0o755 });
    await c.setup();
    await c.start();
  });

  after(async () => {
    await c?.cleanup();
  });

  test('is paced: while changes keep coming it rests twice each run, then converges', async (t) => {
    await fs.mkdir(join(c.origin(), 'busy'));
    await c.waitConverged();
    const before = await c.waitIdle(30_000);
    const t0 = performance.now();
    // Meanwhile, the operator's view: does status say the node is paced?
    let writing = true;
    let sawPaced = false;
    const watching = (async () => {
      while (writing) {
        const s = await c.fetchStatus();
        if (s?.nodes.some((x) => x.pacedUntil !== null)) sawPaced = true;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    // A steady writer: a new file every 20 ms for 10 s.
    let n = 0;
    try {
      while (performance.now() - t0 < 10_000) {
        await fs.writeFile(join(c.origin(), 'busy', `f${n++}`), `change ${n}\n`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      writing = false;
      await watching;
    }
    await c.waitConverged(undefined, 60_000);
    const took = performance.now() - t0;
    const after_ = await c.waitIdle(30_000);
    assert.ok(sawPaced, 'status never showed the node as paced');
    assert.equal(nodeOf(after_, c.agentName(0)).pacedUntil, null, 'idle, no longer paced');
    const runs = runsOf(after_, c.agentName(0)) - runsOf(before, c.agentName(0));
    // Each run lasts at least RUN_MS and, while the writer writes, is followed
    // by a rest of PACE_FACTOR runs: a cycle of at least 3 * RUN_MS. Unpaced,
    // runs follow each other (about took / RUN_MS of them). The slack covers
    // the first run (sent at once) and the last (the writer stopped), and a
    // writer or master that stalls past QUIET_MS on a busy machine, which
    // ends a rest early.
    const bound = Math.ceil(took / ((1 + PACE_FACTOR) * RUN_MS)) + 4;
    t.diagnostic(`${n} files in ${Math.round(took)} ms until converged; ${runs} rsync runs (bound ${bound}, unpaced about ${Math.round(took / RUN_MS)})`);
    assert.ok(runs >= 2, `${runs} rsync runs`);
    assert.ok(runs <= bound, `${runs} rsync runs for ${Math.round(took)} ms of changes; paced, at most ${bound}`);
  });
});

// --- a batch with nothing for the agent ---------------------------------------

describe('a batch for a path the agent does not mirror', { timeout: 120_000 }, () => {
  let c: Cluster;
  let gate = '';

  before(async () => {
    // The master serves www and feeds; the agent mirrors www only, through an
    // rsync held back while the gate file exists.
    c = new Cluster({
      agents: 1,
      paths: [{ name: 'www' }, { name: 'feeds' }],
      agent: () => ({ rsync: { binary: join(c.dir, 'gated-rsync') }, paths: [{ name: 'www', target: c.mirror(0, 'www') }] }),
    });
    gate = join(c.dir, 'gate');
    await fs.writeFile(join(c.dir, 'gated-rsync'), `#!/bin/sh\nwhile [ -e '${gate}' ]; do sleep 0.02; done\nexec rsync "$@"\n`, { mode: 0o755 });
    await c.setup();
    await c.start();
  });

  after(async () => {
    await fs.rm(gate, { force: true });
    await c?.cleanup();
  });

  test('arriving while rsync runs, it still leaves the window: the node goes back to idle', async () => {
    const name = c.agentName(0);
    const sentBefore = nodeOf((await c.fetchStatus())!, name).lastBatchSent ?? 0;
    /** waits until the node has been sent `count` batches since the start, none of them applied */
    const sent = (count: number, what: string): Promise<void> =>
      waitFor(async () => {
        const n = nodeOf((await c.fetchStatus())!, name);
        return n.lastBatchSent === sentBefore + count && n.inFlight === count;
      }, 10_000, what);
    await fs.writeFile(gate, '');
    try {
      await fs.writeFile(join(c.origin('www'), 'a.txt'), 'www');
      await sent(1, 'the www batch');
      await fs.writeFile(join(c.origin('feeds'), 'b.txt'), 'feeds');
      await sent(2, 'the feeds batch');
      const s = (await c.fetchStatus())!;
      assert.equal(nodeOf(s, name).inFlight, 2, 'both batches reached the node while its rsync was held');
      assert.ok(s.paths.every((p) => p.lastEvent !== null), 'each came from its own path');
    } finally {
      await fs.rm(gate, { force: true });
    }
    await waitFor(async () => {
      try {
        return (await fs.readFile(join(c.mirror(0, 'www'), 'a.txt'), 'utf8')) === 'www';
      } catch {
        return false;
      }
    }, 30_000, 'a.txt mirrored');
    const s = await c.waitIdle(30_000);
    assert.equal(nodeOf(s, c.agentName(0)).lastBatchApplied, s.nodes[0]!.lastBatchSent);
  });
});
