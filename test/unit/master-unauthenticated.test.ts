// Issue 10, item 6: a client that only says hello as a node, without its key,
// must not make a dead mirror look alive. A real Master in this process on a
// driven clock; the intruder and the agent are real websocket clients.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../harness/manual-clock.js';
import { FakeAgent } from '../../harness/fake-agent.js';
import { quietLog } from '../../harness/quiet-log.js';
import { waitFor } from '../../harness/wait.js';
import type { MasterConfig } from '../../src/config/types.js';
import { Master } from '../../src/master/master.js';
import { formatPublicKey } from '../../src/protocol/keys.js';
import { signerFromSeed, type Signer } from '../../src/protocol/sign.js';
import type { NodeStatus } from '../../src/protocol/status.js';

const newSigner = (): Signer => signerFromSeed(new Uint8Array(randomBytes(32)));
const dir = mkdtempSync(join(tmpdir(), 'inosync-unauth-'));
const clock = new ManualClock();
const masterSigner = newSigner();
const nodeKey = newSigner();
let master: Master;

before(async () => {
  mkdirSync(join(dir, 'www'));
  const config: MasterConfig = {
    file: join(dir, 'master.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    key: join(dir, 'unused.key'),
    rsync: { listen: { host: '127.0.0.1', port: 1 }, binary: 'rsync', tls: false },
    status: { listen: { host: '127.0.0.1', port: 0 } },
    delay: 0.1,
    events: ['create', 'modify', 'delete', 'move', 'attrib'],
    watcher: 'inotify',
    reconcile: 0,
    maxPending: 10_000,
    nodes: [{ name: 'm1', key: formatPublicKey(nodeKey.publicKey) }],
    paths: [{ name: 'www', watch: join(dir, 'www'), exclude: [] }],
  };
  master = new Master(config, { log: quietLog, signer: masterSigner, dryRun: true, clock, rootCheckMs: 2_000, sessions: { heartbeatMs: 1e9, handshakeTimeoutMs: 5_000 } });
  await master.start();
});
after(async () => {
  await master.stop();
  rmSync(dir, { recursive: true, force: true });
});

const node = (): NodeStatus => master.status().nodes.find((n) => n.name === 'm1')!;
const url = (): string => `ws://127.0.0.1:${master.port}`;

async function intruder(localAddress: string, then: 'close' | 'wait'): Promise<void> {
  // The intruder knows the name, not the key: it signs with its own.
  const a = await FakeAgent.connect({ url: url(), name: 'm1', signer: newSigner(), localAddress });
  a.hello();
  await a.nextFrame(0); // the challenge: the master took the name
  assert.equal(node().state === 'connecting', false, 'a hello is not a connection');
  if (then === 'close') a.close();
  else clock.advance(5_000);
  await a.waitClosed();
}

test('a hello without the key moves neither state nor lastSeen nor address; it is counted as a refusal', async () => {
  const fresh = node();
  const refusals = master.status().refusalsTotal ?? 0;
  await intruder('127.0.0.2', 'close');
  await waitFor(() => (master.status().refusalsTotal ?? 0) === refusals + 1, 5_000, 'the refusal');
  assert.equal(node().state, 'never-connected');
  assert.equal(node().lastSeen, fresh.lastSeen);
  assert.equal(node().address, null);
  assert.equal(node().lastRefusal?.address?.startsWith('127.0.0.2'), true, 'the attempt is shown as a refusal');

  // The real agent connects, then goes away: disconnected.
  const real = await FakeAgent.connect({ url: url(), name: 'm1', signer: nodeKey, masterKey: masterSigner.publicKey, localAddress: '127.0.0.1' });
  await real.handshake();
  await waitFor(() => node().connected, 5_000, 'connected');
  real.close();
  await waitFor(() => node().state === 'disconnected', 5_000, 'disconnected');
  const dead = node();

  clock.advance(60_000);
  for (const then of ['close', 'wait', 'close'] as const) await intruder('127.0.0.3', then);
  await waitFor(() => (master.status().refusalsTotal ?? 0) === refusals + 4, 5_000, 'three more refusals');
  const after = node();
  assert.equal(after.state, 'disconnected', 'a dead mirror stays dead');
  assert.equal(after.lastSeen, dead.lastSeen, 'lastSeen is the real agent\'s');
  assert.equal(after.address, dead.address);
  assert.match(after.lastRefusal?.reason ?? '', /handshake timeout|before authenticating/);
});
