// A real Master in this process, its clock driven by the test, and stand-in
// agents on real websockets: what each node is sent, batch by batch, read
// from the frames themselves rather than from log lines. Dry run: no rsync
// daemon; the stand-ins report results as a real agent would.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../harness/manual-clock.js';
import type { MasterConfig } from '../../src/config/types.js';
import { Master, WINDOW } from '../../src/master/master.js';
import { PACE_MIN_RUN_MS, QUIET_MS, restAfter } from '../../src/master/pacing.js';
import type { PathChanges } from '../../src/protocol/changes.js';
import { formatPublicKey } from '../../src/protocol/keys.js';
import type { RunReport } from '../../src/protocol/messages.js';
import { signerFromSeed, type Signer } from '../../src/protocol/sign.js';
import type { NodeStatus } from '../../src/protocol/status.js';
import { FakeAgent } from '../../harness/fake-agent.js';
import { sleep, waitFor } from '../../harness/wait.js';
import { quietLog } from '../../harness/quiet-log.js';

const ROOT_CHECK_MS = 2_000;
const newSigner = (): Signer => signerFromSeed(new Uint8Array(randomBytes(32)));

interface BatchFrame {
  t: 'batch';
  seq: number;
  to: string[];
  changes: PathChanges[];
}

/** A master on a temporary origin, `names` known as nodes, on a driven clock. */
class Rig {
  readonly dir = mkdtempSync(join(tmpdir(), 'inosync-inproc-'));
  readonly origin = join(this.dir, 'www');
  readonly clock = new ManualClock();
  readonly masterSigner = newSigner();
  readonly signers = new Map<string, Signer>();
  readonly master: Master;
  readonly agents = new Map<string, FakeAgent>();
  /** frames of each agent already read as batches */
  private readonly read = new Map<string, number>();

  constructor(names: string[], delaySeconds = 0.1, marker?: string, reconcileMs = 0) {
    mkdirSync(this.origin);
    if (marker) writeFileSync(join(this.origin, marker), '');
    for (const n of names) this.signers.set(n, newSigner());
    const config: MasterConfig = {
      file: join(this.dir, 'master.yaml'),
      listen: { host: '127.0.0.1', port: 0 },
      key: join(this.dir, 'unused.key'),
      rsync: { listen: { host: '127.0.0.1', port: 1 }, binary: 'rsync', tls: false }, // dry run: no daemon listens
      status: { listen: { host: '127.0.0.1', port: 0 } },
      delay: delaySeconds,
      events: ['create', 'modify', 'delete', 'move', 'attrib'],
      watcher: 'inotify',
      reconcile: 0,
      maxPending: 10_000,
      nodes: names.map((name) => ({ name, key: formatPublicKey(this.signers.get(name)!.publicKey) })),
      paths: [{ name: 'www', watch: this.origin, exclude: [], ...(marker ? { marker } : {}) }],
    };
    // The stand-in agents answer pings over a real socket, so a jump of the
    // driven clock must not read as their silence.
    const sessions = { heartbeatMs: 1e9, handshakeTimeoutMs: 1e9 };
    this.master = new Master(config, { log: quietLog, signer: this.masterSigner, dryRun: true, clock: this.clock, rootCheckMs: ROOT_CHECK_MS, reconcileMs, sessions });
  }

  async connect(name: string): Promise<FakeAgent> {
    const a = await FakeAgent.connect({ url: `ws://127.0.0.1:${this.master.port}`, name, signer: this.signers.get(name)!, masterKey: this.masterSigner.publicKey });
    await a.handshake();
    this.agents.set(name, a);
    this.read.set(name, 2);
    return a;
  }

  /** Batches `name` received since the last call. */
  newBatches(name: string): BatchFrame[] {
    const a = this.agents.get(name)!;
    const from = this.read.get(name)!;
    this.read.set(name, a.frames.length);
    return (a.decodedAfter(from) as { t: string }[]).filter((m): m is BatchFrame => m.t === 'batch');
  }

  /** Waits until `name` has been sent `count` more frames than read so far. */
  async receives(name: string, count: number): Promise<void> {
    const a = this.agents.get(name)!;
    const want = this.read.get(name)! + count;
    await a.until(() => a.frames.length >= want, 5_000, `${count} frame(s) for ${name}`);
  }

  result(name: string, seq: number, runMs = 1): void {
    const run: RunReport = { path: 'www', full: false, kind: 'ok', exit: 0, message: '', files: 1, bytes: 1, deleted: 0, durationMs: runMs };
    this.agents.get(name)!.sendSigned({ t: 'result', seq, ok: true, runs: [run] });
  }

  node(name: string): NodeStatus {
    return this.master.status().nodes.find((n) => n.name === name)!;
  }

  /** Writes a file and waits for the watcher to report it: the master's flush timer is then armed. */
  async write(rel: string): Promise<void> {
    const timers = this.clock.waiting;
    writeFileSync(join(this.origin, rel), `${rel}\n`);
    await waitFor(() => this.clock.waiting > timers, 5_000, `the event for ${rel}`);
    await sleep(30); // the write's modify, in the same batch
  }

  async close(): Promise<void> {
    for (const a of this.agents.values()) a.close();
    await this.master.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const files = (b: BatchFrame): string[] => b.changes.flatMap((c) => c.files);

/** A started rig whose one node, m0, has applied its initial full sync. */
async function idleRig(names: string[], delaySeconds?: number, marker?: string, reconcileMs?: number): Promise<Rig> {
  const rig = new Rig(names, delaySeconds, marker, reconcileMs);
  await rig.master.start();
  await rig.connect('m0');
  rig.clock.advance(0);
  await rig.receives('m0', 1);
  rig.result('m0', rig.newBatches('m0')[0]!.seq);
  await waitFor(() => rig.node('m0').state === 'idle', 5_000, 'idle');
  return rig;
}

describe('an idle master', () => {
  let rig: Rig;
  before(async () => {
    rig = new Rig(['m0']);
    await rig.master.start();
    await rig.connect('m0');
    rig.clock.advance(0); // the pump after the welcome
    await rig.receives('m0', 1);
    const [initial] = rig.newBatches('m0');
    assert.equal(initial?.changes[0]?.full, true, 'a new node gets a full sync first');
    rig.result('m0', initial!.seq);
    await waitFor(() => rig.node('m0').inFlight === 0, 5_000, 'the initial sync applied');
  });
  after(() => rig?.close());

  test('sends a lone change at once: no time passes on its clock', async () => {
    await rig.write('lone.txt');
    rig.clock.advance(0);
    await rig.receives('m0', 1);
    const [b] = rig.newBatches('m0');
    assert.deepEqual(files(b!), ['lone.txt']);
    assert.deepEqual(b!.to, ['m0']);
  });

  test('busy, it sends at most one batch per delay', async () => {
    await rig.write('second.txt');
    rig.clock.advance(99);
    await sleep(50);
    assert.equal(rig.newBatches('m0').length, 0, 'nothing before the delay is over');
    rig.clock.advance(1);
    await rig.receives('m0', 1);
    assert.deepEqual(rig.newBatches('m0').map(files), [['second.txt']]);
  });
});

describe('a node that lags', () => {
  const [m0, m1, m2] = ['m0', 'm1', 'm2'] as const;
  let rig: Rig;
  before(async () => {
    rig = new Rig([m0, m1, m2]);
    await rig.master.start();
    for (const n of [m0, m1, m2]) await rig.connect(n);
    rig.clock.advance(0);
    for (const n of [m0, m1, m2]) {
      await rig.receives(n, 1);
      rig.result(n, rig.newBatches(n)[0]!.seq);
    }
    await waitFor(() => [m0, m1, m2].every((n) => rig.node(n).state === 'idle'), 5_000, 'every node idle');
  });
  after(() => rig?.close());

  test('gets one merged catch-up batch while the others keep sharing one signed batch', async () => {
    const ROUNDS = WINDOW + 2;
    const toM2: BatchFrame[] = [];
    const shared: BatchFrame[] = [];
    for (let r = 1; r <= ROUNDS; r++) {
      await rig.write(`r${r}.txt`);
      rig.clock.advance(100); // a delay later: the flush
      // The caught-up nodes apply each batch at once; m2's runs are held back.
      for (const n of [m0, m1]) {
        await rig.receives(n, 1);
        const [b] = rig.newBatches(n);
        assert.deepEqual(files(b!), [`r${r}.txt`], `round ${r} to ${n}`);
        rig.result(n, b!.seq);
        if (n === m0) shared.push(b!);
        else assert.equal(b!.seq, shared.at(-1)!.seq, `round ${r}: ${m0} and ${m1} share one batch`);
      }
      if (r <= WINDOW) await rig.receives(m2, 1);
      toM2.push(...rig.newBatches(m2));
      await waitFor(() => rig.node(m0).inFlight === 0 && rig.node(m1).inFlight === 0, 5_000, `round ${r} applied`);
    }
    // m2 shared the first WINDOW batches, and was left out once its window was full.
    assert.deepEqual(shared.map((b) => b.to.includes(m2)), shared.map((_, k) => k < WINDOW));
    assert.deepEqual(toM2.map((b) => b.seq), shared.slice(0, WINDOW).map((b) => b.seq));
    const held = rig.node(m2);
    assert.equal(held.state, 'syncing');
    assert.equal(held.inFlight, WINDOW, 'a full window in flight');
    assert.ok(held.pending > held.inFlight, 'and more owed than sent');
    // Its run ends: what it missed reaches it as one batch of its own.
    rig.result(m2, toM2.at(-1)!.seq);
    await rig.receives(m2, 1);
    const catchUp = rig.newBatches(m2);
    assert.equal(catchUp.length, 1);
    assert.deepEqual(catchUp[0]!.to, [m2]);
    assert.deepEqual(files(catchUp[0]!).sort(), [`r${WINDOW + 1}.txt`, `r${WINDOW + 2}.txt`].sort(), 'the rounds it missed, merged');
    rig.result(m2, catchUp[0]!.seq);
    await waitFor(() => rig.node(m2).state === 'idle', 5_000, `${m2} idle`);
    for (const n of [m0, m1]) assert.equal(rig.newBatches(n).length, 0, `${n} was sent nothing more`);
  });
});

describe('a node behind a busy origin', () => {
  let rig: Rig;
  before(async () => {
    rig = await idleRig(['m0'], 0);
  });
  after(() => rig?.close());

  test('rests after two long runs that ended with more owed; sent the rest once the origin is quietLog, on its clock', async () => {
    const RUN = PACE_MIN_RUN_MS;
    const sent: BatchFrame[] = [];
    const next = async (): Promise<BatchFrame> => {
      await rig.receives('m0', 1);
      const [b] = rig.newBatches('m0');
      sent.push(b!);
      return b!;
    };
    // Changes keep coming while m0's long runs go on.
    await rig.write('a');
    rig.clock.advance(0);
    const a = await next();
    await rig.write('b');
    rig.clock.advance(0);
    const b = await next();
    rig.result('m0', a.seq, RUN); // more owed (b), but one such run is not enough
    await waitFor(() => rig.node('m0').inFlight === 1, 5_000, 'a applied');
    assert.equal(rig.node('m0').pacedUntil, null);
    await rig.write('c');
    rig.clock.advance(0);
    const c = await next();
    rig.result('m0', b.seq, RUN); // the second in a row: paced
    await waitFor(() => rig.node('m0').pacedUntil !== null, 5_000, 'm0 paced');
    // Paced, it is sent one batch at a time: d is owed, not sent.
    await rig.write('d');
    rig.clock.advance(0);
    await sleep(50);
    assert.equal(rig.newBatches('m0').length, 0, 'nothing sent while a batch is in flight');
    const t = rig.clock.now();
    rig.result('m0', c.seq, RUN);
    await waitFor(() => rig.node('m0').inFlight === 0, 5_000, 'c applied');
    assert.equal(rig.node('m0').pacedUntil, new Date(t + restAfter(RUN)).toISOString(), 'resting for twice its run');
    // The origin changes again 100 ms on: the rest goes on past the first quietLog deadline.
    rig.clock.advance(100);
    await rig.write('e');
    rig.clock.advance(0);
    rig.clock.advance(QUIET_MS - 101); // t + QUIET_MS - 1
    await sleep(50);
    assert.equal(rig.newBatches('m0').length, 0, 'still resting');
    rig.clock.advance(1); // t + QUIET_MS: quietLog since d, but e came at t + 100
    await sleep(50);
    assert.equal(rig.newBatches('m0').length, 0, 'the origin is still busy');
    rig.clock.advance(99); // t + 100 + QUIET_MS - 1
    await sleep(50);
    assert.equal(rig.newBatches('m0').length, 0, 'still busy');
    rig.clock.advance(1); // quietLog for QUIET_MS since e, well before the rest ends
    const merged = await next();
    assert.deepEqual(files(merged), ['d', 'e'], 'what it was owed, as one batch');
    assert.ok(rig.clock.now() < t + restAfter(RUN));
  });
});

describe('a watched root that goes away', () => {
  let rig: Rig;
  before(async () => {
    rig = await idleRig(['m0'], 0, '.mounted');
  });
  after(() => rig?.close());

  const paused = (): string | null => rig.master.status().paths[0]!.paused;

  test('its marker missing: paused at the next look, nothing sent; back, a full sync', async () => {
    rmSync(join(rig.origin, '.mounted'));
    rig.clock.advance(ROOT_CHECK_MS - 1);
    assert.equal(paused(), null, 'not looked at yet');
    rig.clock.advance(1);
    assert.match(paused() ?? '', /^marker file .*\.mounted is missing/);
    await rig.write('while-paused.txt');
    rig.clock.advance(0);
    await sleep(50);
    assert.equal(rig.newBatches('m0').length, 0, 'nothing of a paused path is sent');
    writeFileSync(join(rig.origin, '.mounted'), '');
    rig.clock.advance(ROOT_CHECK_MS);
    await waitFor(() => paused() === null, 5_000, 'resumed');
    await rig.receives('m0', 1);
    const batches = rig.newBatches('m0');
    assert.ok(batches.some((b) => b.changes.some((c) => c.name === 'www' && c.full)), 'a full sync of the path');
    for (const b of batches) rig.result('m0', b.seq);
    await waitFor(() => rig.node('m0').state === 'idle', 5_000, 'idle again');
  });

  test('deleted and made again: paused, then resumed with a new watcher that sees changes', async () => {
    const away = rig.origin + '.away';
    renameSync(rig.origin, away);
    rig.clock.advance(ROOT_CHECK_MS);
    await waitFor(() => paused() !== null, 5_000, 'paused');
    assert.match(paused()!, /is gone|moved away/);
    mkdirSync(rig.origin);
    writeFileSync(join(rig.origin, '.mounted'), '');
    rmSync(away, { recursive: true });
    // Another inode on the same filesystem: the master syncs it, and watches it anew.
    rig.clock.advance(ROOT_CHECK_MS);
    await waitFor(() => paused() === null, 5_000, 'resumed');
    await rig.receives('m0', 1);
    for (const b of rig.newBatches('m0')) rig.result('m0', b.seq);
    await waitFor(() => rig.node('m0').state === 'idle', 5_000, 'idle again');
    await rig.write('after.txt');
    rig.clock.advance(0);
    await rig.receives('m0', 1);
    // (What the path saw while paused may come along again: covered by the full sync already.)
    assert.ok(rig.newBatches('m0').flatMap(files).includes('after.txt'), 'the new watcher reports changes');
  });
});

describe('periodic reconciliation', () => {
  const EVERY = 60_000;
  let rig: Rig;
  before(async () => {
    rig = await idleRig(['m0'], 0, undefined, EVERY);
  });
  after(() => rig?.close());

  test('every interval on its clock, a full sync of every path that adds no lag', async () => {
    for (let round = 1; round <= 2; round++) {
      rig.clock.advance(EVERY - 1);
      await sleep(50);
      assert.equal(rig.newBatches('m0').length, 0, `round ${round}: not before the interval`);
      rig.clock.advance(1);
      await rig.receives('m0', 1);
      const [b] = rig.newBatches('m0');
      assert.deepEqual(b!.changes, [{ name: 'www', full: true, files: [], dirs: [], trees: [] }]);
      assert.equal(rig.node('m0').lagSeconds, 0, 'a reconciliation is not lag');
      rig.result('m0', b!.seq);
      await waitFor(() => rig.node('m0').state === 'idle', 5_000, 'idle');
    }
  });
});
