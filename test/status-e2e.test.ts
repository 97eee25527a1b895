// Per-node status of a real master: /status, /metrics and `inosync status`
// (table, --json, -c) for every state a node can be driven into with real
// processes, and the command's exit codes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { MasterStatus, NodeState, NodeStatus } from '../src/protocol/status.js';
import { NODE_STATES } from '../src/master/metrics.js';
import { encode } from '../src/protocol/codec.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';
import { Cluster } from '../harness/cluster.js';
import { sleep, waitFor } from '../harness/wait.js';
import { parseExposition, sample, type Parsed } from '../harness/prometheus.js';

const CLI = new URL('../src/cli/inosync.js', import.meta.url).pathname;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function inosync(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The table row of a node, split into its columns (ERROR, the last, keeps its spaces). */
function row(table: string, name: string): { state: string; lag: string; pending: string; rest: string } {
  const line = table.split('\n').find((l) => l.startsWith(name + ' '));
  assert.ok(line, `no row for ${name} in\n${table}`);
  const [, state, lag, pending, rest] = /^\S+\s+(\S+(?: \d+%)?)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line)!;
  return { state: state!, lag: lag!, pending: pending!, rest: rest! };
}

const nodeOf = (s: MasterStatus, name: string): NodeStatus => {
  const n = s.nodes.find((x) => x.name === name);
  assert.ok(n, `no node ${name}`);
  return n;
};

describe('per-node status of a real master', { timeout: 240_000 }, () => {
  let c: Cluster;
  let gate = '';
  const m = (i: number): string => c.agentName(i);

  async function status(): Promise<MasterStatus> {
    const s = await c.fetchStatus();
    assert.ok(s, 'the master answers /status');
    return s;
  }

  async function waitState(i: number, state: NodeState, timeoutMs = 30_000): Promise<MasterStatus> {
    let last: MasterStatus | null = null;
    await waitFor(
      async () => {
        last = await c.fetchStatus();
        return last !== null && nodeOf(last, m(i)).state === state;
      },
      timeoutMs,
      `${m(i)} ${state}`,
      () => `${JSON.stringify(last?.nodes, null, 1)}\n${c.logs()}`,
    );
    return last!;
  }

  async function metrics(): Promise<Parsed> {
    const res = await fetch(`${c.statusUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return parseExposition(await res.text());
  }

  /** The state gauge names exactly one state per node, and the per-node series are there. */
  function assertNodeMetrics(p: Parsed, name: string, state: NodeState): void {
    const states = NODE_STATES.filter((st) => sample(p, 'inosync_node_state', { node: name, state: st }) === 1);
    assert.deepEqual(states, [state], `${name} state gauge`);
    for (const f of ['inosync_node_up', 'inosync_node_lag_seconds', 'inosync_node_pending_changes', 'inosync_node_in_flight_batches', 'inosync_node_bytes_total']) {
      const v = sample(p, f, { node: name });
      assert.ok(v !== undefined && Number.isFinite(v) && v >= 0, `${f}{node="${name}"} = ${v}`);
    }
    const connected = state !== 'never-connected' && state !== 'connecting' && state !== 'disconnected';
    assert.equal(sample(p, 'inosync_node_up', { node: name }), connected ? 1 : 0, `${name} up`);
  }

  /**
   * `inosync status` as a table and as --json, and with `viaConfig` also found
   * through -c master.yaml; every way must give the same exit code.
   */
  async function ask(viaConfig = false): Promise<{ table: string; json: MasterStatus; code: number | null }> {
    const [table, json, byConfig] = await Promise.all([
      inosync(['status', '--url', c.statusUrl]),
      inosync(['status', '--url', c.statusUrl, '--json']),
      viaConfig ? inosync(['status', '-c', c.masterConfig]) : null,
    ]);
    assert.equal(table.stderr, '', table.stderr);
    assert.equal(json.code, table.code, 'same exit code with --json');
    if (byConfig) {
      assert.equal(byConfig.code, table.code, 'same exit code with -c');
      assert.match(byConfig.stdout, /^NODE\s+STATE\s+LAG\s+PENDING\s+LAST SYNC\s+ADDRESS\s+ERROR$/m, 'the table, found through the config');
    }
    return { table: table.stdout, json: JSON.parse(json.stdout) as MasterStatus, code: table.code };
  }

  /**
   * Clients that say hello as `name` and then go quiet, a new one every
   * second: each stays in the handshake until the master's handshake timeout,
   * so together they keep the node connecting however slow the checks are.
   */
  function holdHandshakes(name: string, from: string): { challenged: Promise<void>; stop(): void } {
    const sockets: WebSocket[] = [];
    let challenged!: () => void;
    const first = new Promise<void>((resolve) => (challenged = resolve));
    const open = (): void => {
      const ws = new WebSocket(`ws://${c.host}:${c.masterPort}`, { localAddress: from });
      sockets.push(ws);
      ws.on('error', () => undefined);
      ws.once('open', () => ws.send(encode({ t: 'hello', v: PROTOCOL_VERSION, name, nonce: new Uint8Array(randomBytes(32)), version: 'test' })));
      ws.once('message', () => challenged());
    };
    open();
    const timer = setInterval(open, 1_000);
    return {
      challenged: first,
      stop: () => {
        clearInterval(timer);
        for (const ws of sockets) ws.terminate();
      },
    };
  }

  before(async () => {
    // mirror2 pulls at 1 KiB/s, so its initial sync of a big file takes
    // minutes; and its rsync waits while a gate file exists, so a sync of a
    // small one lasts as long as the test looks at it, however loaded the machine.
    c = new Cluster({
      agents: 3,
      agent: (i) => (i === 2 ? { rsync: { bwlimit: 1, binary: join(c.dir, 'gated-rsync') } } : {}),
    });
    gate = join(c.dir, 'gate');
    await fs.writeFile(join(c.dir, 'gated-rsync'), `#!/bin/sh\nwhile [ -e '${gate}' ]; do sleep 0.02; done\nexec rsync "$@"\n`, { mode: 0o755 });
    await c.setup();
    await fs.writeFile(join(c.origin(), 'index.html'), '<html>hello</html>');
    await fs.mkdir(join(c.origin(), 'sub'));
    await fs.writeFile(join(c.origin(), 'sub', 'page.html'), 'page');
  });

  after(async () => {
    if (gate) await fs.rm(gate, { force: true });
    await c?.cleanup();
  });

  test('before any agent connects, every node is never-connected and the command exits 1', async () => {
    await c.startMaster();
    const s = await status();
    for (let i = 0; i < 3; i++) {
      const n = nodeOf(s, m(i));
      assert.equal(n.state, 'never-connected');
      assert.equal(n.connected, false);
      assert.equal(n.pending, 1, 'owes one full sync');
      assert.equal(n.lastSync, null);
      assert.equal(n.lastSeen, null);
    }
    const { table, json, code } = await ask(true);
    assert.equal(code, 1);
    for (let i = 0; i < 3; i++) {
      assert.equal(row(table, m(i)).state, 'never-connected');
      assert.match(row(table, m(i)).rest, /^never\s+-\s+-$/, 'never synced, no address, no error');
      assert.equal(nodeOf(json, m(i)).state, 'never-connected');
    }
    const p = await metrics();
    for (let i = 0; i < 3; i++) assertNodeMetrics(p, m(i), 'never-connected');
    assert.ok((sample(p, 'inosync_node_lag_seconds', { node: m(0) }) ?? -1) >= 0);
    assert.equal(sample(p, 'inosync_node_last_sync_duration_seconds', { node: m(0) }), undefined, 'no sync, no duration');
    assert.equal(sample(p, 'inosync_rsyncd_up'), 1);
  });

  test('a connected agent that applied everything is idle; the never-connected ones keep the exit code at 1', async () => {
    c.startAgent(0);
    await c.waitIdle(30_000, [0]);
    await c.waitConverged(0);
    const s = await status();
    const n = nodeOf(s, m(0));
    assert.equal(n.state, 'idle');
    assert.equal(n.connected, true);
    assert.equal(n.address, '127.0.0.1');
    assert.equal(n.pending, 0);
    assert.equal(n.inFlight, 0);
    assert.equal(n.lagSeconds, 0);
    assert.equal(n.lastError, null);
    assert.ok(n.lastSync && n.lastSync.full, 'the initial sync was a full one');
    assert.ok(n.lastBatchApplied !== null && n.lastBatchApplied === n.lastBatchSent);
    assert.ok(n.syncs.ok >= 1);
    assert.ok(n.filesTotal >= 2 && n.bytesTotal > 0, `${n.filesTotal} files, ${n.bytesTotal} bytes`);

    const { table, json, code } = await ask();
    assert.equal(code, 1, 'mirror1 and mirror2 never connected');
    const r = row(table, m(0));
    assert.equal(r.state, 'idle');
    assert.equal(r.lag, '0s');
    assert.equal(r.pending, '0');
    assert.match(r.rest, /ago, took \S+, \d+ files, .*, full\s+127\.0\.0\.1\s+-$/);
    assert.equal(nodeOf(json, m(0)).state, 'idle');
    assert.equal(row(table, m(1)).state, 'never-connected');

    const p = await metrics();
    assertNodeMetrics(p, m(0), 'idle');
    assertNodeMetrics(p, m(1), 'never-connected');
    assert.equal(sample(p, 'inosync_node_lag_seconds', { node: m(0) }), 0);
    assert.ok((sample(p, 'inosync_node_last_sync_duration_seconds', { node: m(0) }) ?? -1) >= 0);
    assert.equal(sample(p, 'inosync_node_syncs_total', { node: m(0), result: 'ok' }), n.syncs.ok);
  });

  test('a stranger naming a node changes neither its state nor its lastSeen; the attempts are refusals', async () => {
    // The master knows the name but not whether the peer holds the key, so it
    // shows nothing of the attempt but a refusal (issue 10, item 6). From
    // another loopback address, to tell it apart from the real agents.
    const before = await status();
    const clients = [holdHandshakes(m(1), '127.0.0.2'), holdHandshakes(m(0), '127.0.0.2')];
    try {
      await Promise.all(clients.map((h) => h.challenged));
      await sleep(1_500);
      const s = await status();
      assert.equal(nodeOf(s, m(1)).state, 'never-connected');
      assert.equal(nodeOf(s, m(1)).lastSeen, nodeOf(before, m(1)).lastSeen);
      assert.equal(nodeOf(s, m(1)).address, null);
      assert.equal(nodeOf(s, m(0)).state, 'idle');
      assert.equal(nodeOf(s, m(0)).address, '127.0.0.1');
      const [{ table }, p] = await Promise.all([ask(), metrics()]);
      assert.equal(row(table, m(1)).state, 'never-connected');
      assert.match(row(table, m(0)).rest, /\s127\.0\.0\.1\s+-$/);
      assertNodeMetrics(p, m(1), 'never-connected');
      assertNodeMetrics(p, m(0), 'idle');
    } finally {
      for (const h of clients) h.stop();
    }
    await waitFor(async () => (nodeOf(await status(), m(1)).lastRefusal?.address ?? '').startsWith('127.0.0.2'), 15_000, 'the attempts shown as refusals');
    const s = await status();
    assert.ok((s.refusalsTotal ?? 0) >= (before.refusalsTotal ?? 0) + 2);
    assert.equal(nodeOf(s, m(1)).state, 'never-connected');
    assert.equal(nodeOf(s, m(0)).address, '127.0.0.1');
  });

  test('a slow initial sync shows initial-sync', async () => {
    // 256 KiB at 1 KiB/s: minutes, so the state holds while we look.
    await fs.writeFile(join(c.origin(), 'big.bin'), randomBytes(256 * 1024));
    await c.waitConverged(0);
    c.startAgent(2);
    const s = await waitState(2, 'initial-sync');
    const n = nodeOf(s, m(2));
    assert.equal(n.connected, true);
    assert.equal(n.inFlight, 1);
    assert.ok(n.lastBatchSent !== null);
    assert.equal(n.lastBatchApplied, null);
    assert.equal(n.lastSync, null);
    const { table, json, code } = await ask();
    assert.equal(code, 1, 'an incomplete mirror is not healthy');
    assert.match(row(table, m(2)).state, /^initial-sync/);
    assert.equal(nodeOf(json, m(2)).state, 'initial-sync');
    assertNodeMetrics(await metrics(), m(2), 'initial-sync');
    assert.equal(nodeOf(await status(), m(0)).state, 'idle', 'the others are not held up');
  });

  test('an agent that stopped is disconnected and still owed its full sync', async () => {
    await c.stopAgent(2);
    const s = await waitState(2, 'disconnected');
    const n = nodeOf(s, m(2));
    assert.equal(n.connected, false);
    assert.equal(n.inFlight, 0, 'nothing is in flight to a node that is gone');
    assert.equal(n.pending, 1, 'the unfinished full sync is owed again');
    assert.ok(n.lagSeconds > 0);
    assert.ok(n.lastSeen !== null);
    assert.equal(n.lastError, null, 'being stopped is not an rsync failure');
    const { table, json, code } = await ask();
    assert.equal(code, 1);
    const r = row(table, m(2));
    assert.equal(r.state, 'disconnected');
    assert.equal(r.pending, '1');
    assert.equal(nodeOf(json, m(2)).state, 'disconnected');
    assertNodeMetrics(await metrics(), m(2), 'disconnected');
    await fs.rm(join(c.origin(), 'big.bin'));
  });

  test("an rsync failure shows error with rsync's exit code and message, and clears once a sync succeeds", async () => {
    // A regular file where the mirror's parent directory was: rsync cannot
    // even stat its destination.
    const data = join(c.dir, 'mirror0', 'data');
    await c.waitIdle(30_000, [0]);
    await fs.rename(data, data + '.aside');
    try {
      await fs.writeFile(data, 'in the way\n');
      await fs.writeFile(join(c.origin(), 'after-breakage.txt'), 'x');
      const s = await waitState(0, 'error');
      const e = nodeOf(s, m(0)).lastError;
      assert.ok(e, 'the error is reported');
      assert.equal(e.path, 'www');
      assert.equal(e.exit, 3);
      assert.equal(e.kind, 'retry');
      assert.match(e.message, /^Errors selecting input\/output files, dirs: .*Not a directory/);
      assert.ok(nodeOf(s, m(0)).inFlight >= 1, 'a retryable failure stays in flight');
      assert.ok(nodeOf(s, m(0)).syncs.failed >= 1);

      const { table, json, code } = await ask();
      assert.equal(code, 1);
      const r = row(table, m(0));
      assert.equal(r.state, 'error');
      assert.match(r.rest, /127\.0\.0\.1\s+rsync exit 3 \[www\]: Errors selecting input\/output/);
      assert.equal(nodeOf(json, m(0)).lastError?.exit, 3);
      const p = await metrics();
      assertNodeMetrics(p, m(0), 'error');
      assert.ok((sample(p, 'inosync_node_syncs_total', { node: m(0), result: 'failed' }) ?? 0) >= 1);
    } finally {
      await fs.rm(data, { force: true });
      await fs.rename(data + '.aside', data);
    }
    // The agent retries on its own and the error goes with the first success.
    await c.waitConverged(0);
    const s = await c.waitIdle(60_000, [0]);
    assert.equal(nodeOf(s, m(0)).lastError, null);
    assert.ok(nodeOf(s, m(0)).lastSync !== null);
  });

  test('every node connected and idle: the command exits 0', async () => {
    c.startAgent(1);
    c.startAgent(2);
    await c.waitIdle(60_000);
    await c.waitConverged();
    const { table, json, code } = await ask(true);
    assert.equal(code, 0, table);
    for (let i = 0; i < 3; i++) {
      assert.equal(row(table, m(i)).state, 'idle');
      assert.equal(nodeOf(json, m(i)).state, 'idle');
    }
    const p = await metrics();
    for (let i = 0; i < 3; i++) {
      assertNodeMetrics(p, m(i), 'idle');
      assert.equal(sample(p, 'inosync_node_lag_seconds', { node: m(i) }), 0);
      assert.equal(sample(p, 'inosync_node_pending_changes', { node: m(i) }), 0);
    }
  });

  test('a node applying a batch is syncing, and syncing still counts as healthy', async () => {
    await fs.writeFile(gate, '');
    try {
      await fs.writeFile(join(c.origin(), 'slow.txt'), 'held back on mirror2');
      await c.waitConverged([0, 1]);
      await c.waitIdle(30_000, [0, 1]);
      const s = await waitState(2, 'syncing');
      const n = nodeOf(s, m(2));
      assert.equal(n.connected, true);
      // One write may reach the master as create and modify: one batch or two.
      assert.ok(n.inFlight >= 1, `${n.inFlight} in flight`);
      assert.ok(n.pending >= 1);
      assert.ok(n.lagSeconds < 30);
      const [{ table, json, code }, p] = await Promise.all([ask(), metrics()]);
      assert.equal(code, 0, `within the lag bound a syncing node is healthy:\n${table}`);
      assert.equal(row(table, m(2)).state, 'syncing');
      assert.equal(row(table, m(0)).state, 'idle');
      assert.equal(nodeOf(json, m(2)).state, 'syncing');
      assertNodeMetrics(p, m(2), 'syncing');
      assert.ok((sample(p, 'inosync_node_in_flight_batches', { node: m(2) }) ?? 0) >= 1);
    } finally {
      await fs.rm(gate, { force: true });
    }
    await c.waitConverged();
    await c.waitIdle(30_000);
  });

  test('a master that is down: exit 2 and a reason on stderr', async () => {
    await c.stopMaster();
    const [byUrl, byJson, byConfig] = await Promise.all([
      inosync(['status', '--url', c.statusUrl]),
      inosync(['status', '--url', c.statusUrl, '--json']),
      inosync(['status', '-c', c.masterConfig]),
    ]);
    for (const r of [byUrl, byJson, byConfig]) {
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /cannot reach the master at http:\/\/127\.0\.0\.1:\d+\/status: connection refused/);
    }
  });
});
