// Both ends of the protocol in one process: the master's AgentSession and the
// agent's MasterSession, joined by an in-memory FrameSocket pair and driven by
// a ManualClock. Every refusal is checked for the close code the peer sees;
// timeouts and heartbeats run in milliseconds of real time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../../harness/manual-clock.js';
import type { Logger } from '../../src/common/log.js';
import { AgentSession, type SessionHost } from '../../src/master/session.js';
import { MasterSession, type MasterSessionHost } from '../../src/agent/master-session.js';
import { decode, encode } from '../../src/protocol/codec.js';
import { open, seal } from '../../src/protocol/envelope.js';
import { CLOSE_ABNORMAL } from '../../src/protocol/frame-socket.js';
import { CLOSE, type RsyncCredentials } from '../../src/protocol/handshake.js';
import { AGENT_FRAME_RATE, HANDSHAKE_TIMEOUT_MS, HEARTBEAT_MS, MAX_AGENT_FRAME, MAX_HANDSHAKE_FRAME, MAX_MASTER_FRAME } from '../../src/protocol/limits.js';
import type { FrameRate } from '../../src/master/frame-budget.js';
import type { AgentMessage, Auth, Batch, Welcome } from '../../src/protocol/messages.js';
import { signerFromSeed, verifierFor, type Signer } from '../../src/protocol/sign.js';
import { PROTOCOL_VERSION } from '../../src/protocol/version.js';
import { framePair, settle, type MemoryFrameSocket } from '../../harness/frame-pair.js';

const NODE = 'mirror1';
const CREDS: RsyncCredentials = { user: 'mirror1', password: 'p4ssw0rd-for-rsync' };
const PATHS: Welcome['paths'] = [{ name: 'www', exclude: ['*.tmp'] }];

const key = (): Signer => signerFromSeed(new Uint8Array(randomBytes(32)));
const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

interface Logged {
  level: string;
  msg: string;
}

function recordingLog(lines: Logged[]): Logger {
  const at = (level: string) => (msg: string) => void lines.push({ level, msg });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

/** The master's side of the host: what master.ts does, reduced to records. */
class MasterHost implements SessionHost {
  readonly session = bytes(16);
  readonly refused: string[] = [];
  readonly messages: AgentMessage[] = [];
  auth: Auth | null = null;
  /** signatures the master checked: a frame refused for its cost must not be one */
  verified = 0;
  hellos = 0;
  closed = 0;
  constructor(
    readonly signer: Signer,
    private readonly nodes: Map<string, Signer>,
  ) {}
  verifierFor(node: string) {
    const k = this.nodes.get(node);
    if (!k) return undefined;
    const v = verifierFor(k.publicKey);
    return { publicKey: v.publicKey, verify: (data: Uint8Array, sig: Uint8Array) => (this.verified++, v.verify(data, sig)) };
  }
  onHello(): void {
    this.hellos++;
  }
  onRefused(_node: string | null, _address: string | null, reason: string): void {
    this.refused.push(reason);
  }
  onAuthenticated(_s: AgentSession, auth: Auth) {
    this.auth = auth;
    return { creds: CREDS, rsyncPort: 8730, rsyncTls: false, paths: PATHS };
  }
  onMessage(_s: AgentSession, m: AgentMessage): void {
    this.messages.push(m);
  }
  onClosed(): void {
    this.closed++;
  }
}

/** The agent's side of the host: what agent.ts does, reduced to records. */
class AgentHost implements MasterSessionHost {
  session: Uint8Array | null = null;
  seq = 0;
  creds: RsyncCredentials | null = null;
  ready = false;
  readonly batches: Batch[] = [];
  readonly rejected: string[] = [];
  closed: { code: number; reason: string; wasReady: boolean } | null = null;
  position() {
    return { session: this.session, seq: this.seq };
  }
  onWelcome(_s: MasterSession, w: Welcome, creds: RsyncCredentials): void {
    this.creds = creds;
    this.session = w.session;
  }
  onReady(): void {
    this.ready = true;
  }
  onBatch(_s: MasterSession, b: Batch): void {
    this.seq = b.seq;
    this.batches.push(b);
  }
  onRejected(_s: MasterSession, reason: string): void {
    this.rejected.push(reason);
  }
  onClosed(_s: MasterSession, code: number, reason: string, wasReady: boolean): void {
    this.closed = { code, reason, wasReady };
  }
}

interface Link {
  clock: ManualClock;
  masterKey: Signer;
  agentKey: Signer;
  /** the master's end of the connection and the agent's */
  mSock: MemoryFrameSocket;
  aSock: MemoryFrameSocket;
  mHost: MasterHost;
  aHost: AgentHost;
  master: AgentSession | null;
  agent: MasterSession | null;
  mLog: Logged[];
  aLog: Logged[];
}

interface LinkOptions {
  /** leave out one side, to play it by hand */
  noMaster?: boolean;
  noAgent?: boolean;
  /** the key the agent believes is the master's (default: the real one) */
  agentTrusts?: Signer;
  /** the key the master has on file for the node (default: the agent's) */
  masterKnows?: Signer;
  masterHeartbeatMs?: number;
  agentHeartbeatMs?: number;
  /** the master's budget for the agent's frames (default AGENT_FRAME_RATE) */
  frameRate?: FrameRate;
}

function link(o: LinkOptions = {}): Link {
  const clock = new ManualClock();
  const masterKey = key();
  const agentKey = key();
  const [mSock, aSock] = framePair();
  const mLog: Logged[] = [];
  const aLog: Logged[] = [];
  const mHost = new MasterHost(masterKey, new Map([[NODE, o.masterKnows ?? agentKey]]));
  const aHost = new AgentHost();
  const master = o.noMaster
    ? null
    : new AgentSession(mSock, '192.0.2.7', mHost, recordingLog(mLog), {
        clock,
        heartbeatMs: o.masterHeartbeatMs ?? HEARTBEAT_MS,
        ...(o.frameRate ? { frameRate: o.frameRate } : {}),
      });
  const agent = o.noAgent
    ? null
    : new MasterSession(aSock, aHost, {
        name: NODE,
        signer: agentKey,
        master: verifierFor((o.agentTrusts ?? masterKey).publicKey),
        log: recordingLog(aLog),
        url: 'ws://master.test:8720',
        clock,
        heartbeatMs: o.agentHeartbeatMs ?? HEARTBEAT_MS,
      });
  agent?.start();
  return { clock, masterKey, agentKey, mSock, aSock, mHost, aHost, master, agent, mLog, aLog };
}

/** Both sides authenticated. */
async function connected(o: LinkOptions = {}): Promise<Link> {
  const l = link(o);
  await settle();
  assert.equal(l.master?.ready, true, 'the master finished the handshake');
  assert.equal(l.agent?.ready, true, 'the agent finished the handshake');
  return l;
}

/** Moves the clock in steps, letting frames (pings, pongs) arrive between them. */
async function run(l: Link, ms: number, step: number): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    l.clock.advance(Math.min(step, ms - t));
    await settle();
  }
}

/** The body of a frame the master sent, by index (0 challenge, 1 welcome). */
function masterSent(l: Link, i: number): Record<string, unknown> {
  const body = open(verifierFor(l.masterKey.publicKey), 'master->agent', l.mSock.sent[i]!);
  assert.ok(body, `master frame ${i} verifies`);
  return decode(body) as Record<string, unknown>;
}

function batch(l: Link, seq: number, over: Partial<Batch> = {}): Uint8Array {
  const b = { t: 'batch', session: l.mHost.session, seq, to: [NODE], time: 1, changes: [{ name: 'www', full: false, files: ['a.txt'], dirs: [], trees: [] }], ...over };
  return seal(l.masterKey, 'master->agent', encode(b));
}

/** The code a side saw the connection close with (read fresh: callbacks set it). */
function closeCode(sock: MemoryFrameSocket): number | undefined {
  return sock.closed?.code;
}

function hello(over: Record<string, unknown> = {}): Uint8Array {
  return encode({ t: 'hello', v: PROTOCOL_VERSION, name: NODE, nonce: bytes(32), version: 'test', ...over });
}

test('a full handshake: both sides authenticate, the credentials arrive, and batches, acks and results flow', async () => {
  const l = await connected();
  assert.deepEqual(l.aHost.creds, CREDS);
  assert.equal(l.mHost.hellos, 1);
  assert.equal(l.mHost.auth?.applied, null, 'a fresh agent has nothing applied');
  assert.deepEqual(l.agent!.announcedPaths, ['www']);

  l.master!.sendFrame(batch(l, 1));
  await settle();
  assert.equal(l.aHost.batches.length, 1);
  assert.deepEqual(l.aHost.batches[0]!.changes[0]!.files, ['a.txt']);
  assert.deepEqual(l.mHost.messages.map((m) => [m.t, 'seq' in m ? m.seq : null]), [['ack', 1]]);

  l.agent!.send({ t: 'result', seq: 1, ok: true, runs: [] });
  await settle();
  assert.deepEqual(l.mHost.messages.map((m) => m.t), ['ack', 'result']);
  assert.equal(l.aSock.closed, null);
  assert.equal(l.mSock.closed, null);
});

test('an agent that already follows this run of the master says how far it got', async () => {
  const l = link({ noMaster: true });
  const masterHost = l.mHost;
  l.aHost.session = masterHost.session;
  l.aHost.seq = 41;
  new AgentSession(l.mSock, null, masterHost, recordingLog([]), { clock: l.clock });
  await settle();
  assert.equal(l.agent!.ready, true);
  assert.equal(masterHost.auth?.applied?.seq, 41);
});

// --- the master refuses ---------------------------------------------------

interface MasterCase {
  name: string;
  /** what a hostile or broken agent sends, in place of the real agent */
  act: (l: Link) => void | Promise<void>;
  close: number;
  /** the real agent runs the handshake first */
  afterHandshake?: boolean;
  /** the real agent plays its part, against a master that has another key on file */
  realAgent?: boolean;
  opts?: LinkOptions;
}

/** The agent's connection id and next counter, read from the frames on the wire. */
function agentFrame(l: Link, msg: Record<string, unknown>, signer = l.agentKey): Uint8Array {
  const welcome = masterSent(l, 1);
  return seal(signer, 'agent->master', encode({ conn: welcome.conn, n: 100, ...msg }));
}

const masterCases: MasterCase[] = [
  { name: 'a text frame instead of hello', act: (l) => l.aSock.sendText('hello'), close: CLOSE.protocol },
  { name: 'a hello over the handshake bound', act: (l) => l.aSock.send(new Uint8Array(MAX_HANDSHAKE_FRAME + 1)), close: CLOSE.protocol },
  { name: 'a hello that does not decode', act: (l) => l.aSock.send(bytes(200)), close: CLOSE.protocol },
  { name: 'a hello for another protocol version', act: (l) => l.aSock.send(hello({ v: PROTOCOL_VERSION + 1 })), close: CLOSE.protocol },
  { name: 'a hello from an unknown node', act: (l) => l.aSock.send(hello({ name: 'intruder' })), close: CLOSE.unauthorized },
  {
    name: 'an auth signed with a key the master does not have for the node',
    opts: { masterKnows: key() },
    realAgent: true,
    act: () => undefined,
    close: CLOSE.unauthorized,
  },
  {
    name: 'an auth bound to another connection',
    act: async (l) => {
      l.aSock.send(hello());
      await settle();
      const auth = { t: 'auth', conn: bytes(16), n: 0, boxKey: bytes(32), applied: null, version: 'test' };
      l.aSock.send(seal(l.agentKey, 'agent->master', encode(auth)));
    },
    close: CLOSE.unauthorized,
  },
  {
    name: 'an auth over the handshake bound',
    act: async (l) => {
      l.aSock.send(hello());
      await settle();
      l.aSock.send(new Uint8Array(MAX_HANDSHAKE_FRAME + 1));
    },
    close: CLOSE.protocol,
  },
  { name: 'a text frame once authenticated', afterHandshake: true, act: (l) => l.aSock.sendText('{"t":"ack"}'), close: CLOSE.protocol },
  { name: 'a frame over the agent bound', afterHandshake: true, act: (l) => l.aSock.send(new Uint8Array(MAX_AGENT_FRAME + 1)), close: CLOSE.tooBig },
  {
    name: 'a frame with a bad signature once authenticated',
    afterHandshake: true,
    act: (l) => l.aSock.send(agentFrame(l, { t: 'ack', seq: 0 }, key())),
    close: CLOSE.protocol,
  },
  {
    name: 'a frame bound to another connection',
    afterHandshake: true,
    act: (l) => l.aSock.send(agentFrame(l, { t: 'ack', seq: 0, conn: bytes(16) })),
    close: CLOSE.protocol,
  },
  {
    name: 'a replayed frame',
    afterHandshake: true,
    act: async (l) => {
      l.agent!.send({ t: 'progress', path: 'www', percent: 10 });
      await settle();
      assert.equal(l.mHost.messages.length, 1, 'the original frame is accepted');
      l.aSock.send(l.aSock.sent.at(-1)!);
    },
    close: CLOSE.protocol,
  },
  {
    name: 'a signed frame that is not a message',
    afterHandshake: true,
    act: (l) => l.aSock.send(agentFrame(l, { t: 'hello' })),
    close: CLOSE.protocol,
  },
];

for (const c of masterCases) {
  test(`the master closes with ${c.close} on ${c.name}`, async () => {
    const l = c.afterHandshake ? await connected(c.opts) : link({ noAgent: !c.realAgent, ...c.opts });
    await c.act(l);
    await settle();
    assert.equal(closeCode(l.mSock), c.close, `the master's end: ${JSON.stringify(l.mSock.closed)}`);
    assert.equal(closeCode(l.aSock), c.close, 'the agent sees the same code');
    assert.equal(l.master!.phase, 'closed');
    if (c.close !== CLOSE.tooBig) assert.equal(l.mHost.refused.length, 1, `refused once: ${l.mHost.refused.join('; ')}`);
  });
}

// --- the agent refuses ----------------------------------------------------

test('the agent refuses a master that does not hold the configured key', async () => {
  const l = link({ agentTrusts: key() });
  await settle();
  assert.equal(closeCode(l.aSock), CLOSE.protocol);
  assert.equal(l.aHost.ready, false);
  assert.equal(l.aHost.creds, null);
  assert.ok(l.aLog.some((x) => x.level === 'error' && /did not prove it holds the key in master.key/.test(x.msg)));
});

interface AgentHandshakeCase {
  name: string;
  /** a challenge or welcome from a master played by hand */
  reply: (l: Link, hello: { nonce: Uint8Array }) => Record<string, unknown>[];
  log: RegExp;
}

const agentHandshakeCases: AgentHandshakeCase[] = [
  {
    name: 'a challenge for another protocol version',
    reply: (_l, h) => [{ t: 'challenge', v: PROTOCOL_VERSION + 1, session: bytes(16), nonce: bytes(32), echo: h.nonce, name: NODE }],
    log: /master speaks protocol/,
  },
  {
    name: 'a challenge made for another connection (replayed)',
    reply: () => [{ t: 'challenge', v: PROTOCOL_VERSION, session: bytes(16), nonce: bytes(32), echo: bytes(32), name: NODE }],
    log: /challenge not made for this connection/,
  },
  {
    name: 'a challenge for another node',
    reply: (_l, h) => [{ t: 'challenge', v: PROTOCOL_VERSION, session: bytes(16), nonce: bytes(32), echo: h.nonce, name: 'mirror2' }],
    log: /challenge not made for this connection/,
  },
  {
    name: 'a welcome bound to another connection',
    reply: (_l, h) => {
      const session = bytes(16);
      return [
        { t: 'challenge', v: PROTOCOL_VERSION, session, nonce: bytes(32), echo: h.nonce, name: NODE },
        { t: 'welcome', conn: bytes(16), n: 0, node: NODE, session, boxKey: bytes(32), creds: { nonce: bytes(24), box: bytes(64) }, rsyncPort: 873, rsyncTls: false, paths: [] },
      ];
    },
    log: /welcome not made for this connection/,
  },
];

for (const c of agentHandshakeCases) {
  test(`the agent closes with ${CLOSE.protocol} on ${c.name}`, async () => {
    const l = link({ noMaster: true });
    await settle();
    const h = decode(l.aSock.sent[0]!) as { t: string; nonce: Uint8Array };
    assert.equal(h.t, 'hello');
    for (const m of c.reply(l, h)) {
      l.mSock.send(seal(l.masterKey, 'master->agent', encode(m)));
      await settle();
    }
    assert.equal(closeCode(l.aSock), CLOSE.protocol);
    assert.equal(l.aHost.ready, false);
    assert.ok(l.aLog.some((x) => x.level === 'error' && c.log.test(x.msg)), JSON.stringify(l.aLog));
  });
}

interface BatchCase {
  name: string;
  frame: (l: Link) => Uint8Array | string;
  reason: RegExp;
}

const batchCases: BatchCase[] = [
  { name: 'a text frame', frame: () => 'batch', reason: /text frame/ },
  { name: 'a forged batch', frame: (l) => batch({ ...l, masterKey: key() }, 2), reason: /bad signature/ },
  { name: 'an altered batch', frame: (l) => batch(l, 2).map((b, i, a) => (i === a.length - 1 ? b ^ 1 : b)), reason: /bad signature/ },
  { name: 'a replayed batch', frame: (l) => batch(l, 1), reason: /already received \(replayed; last was 1\)/ },
  { name: 'a batch of another run of the master', frame: (l) => batch(l, 2, { session: bytes(16) }), reason: /another run of the master/ },
  { name: 'a batch for other nodes', frame: (l) => batch(l, 2, { to: ['mirror2'] }), reason: /not this node/ },
  {
    name: 'a batch naming a path the master did not announce',
    frame: (l) => batch(l, 2, { changes: [{ name: 'etc', full: true, files: [], dirs: [], trees: [] }] }),
    reason: /did not announce/,
  },
  { name: 'a batch with an unsafe path', frame: (l) => batch(l, 2, { changes: [{ name: 'www', full: false, files: ['../x'], dirs: [], trees: [] }] }), reason: /unsafe path/ },
  { name: 'a signed frame that does not decode', frame: (l) => seal(l.masterKey, 'master->agent', bytes(40)), reason: /./ },
];

for (const c of batchCases) {
  test(`the agent rejects ${c.name}, tells the master, and stays connected`, async () => {
    const l = await connected();
    l.master!.sendFrame(batch(l, 1));
    await settle();
    assert.equal(l.aHost.batches.length, 1);
    const f = c.frame(l);
    if (typeof f === 'string') l.mSock.sendText(f);
    else l.mSock.send(f);
    await settle();
    assert.equal(l.aHost.batches.length, 1, 'nothing more was accepted');
    assert.equal(l.aHost.rejected.length, 1);
    assert.match(l.aHost.rejected[0]!, c.reason);
    const reject = l.mHost.messages.find((m) => m.t === 'reject');
    assert.ok(reject && reject.t === 'reject', 'the master heard of it');
    assert.match(reject.reason, c.reason);
    assert.equal(l.aSock.closed, null);
  });
}

test('the agent closes with 1009 on a frame over its bound', async () => {
  const l = await connected();
  l.mSock.send(new Uint8Array(MAX_MASTER_FRAME + 1));
  await settle();
  assert.equal(closeCode(l.aSock), CLOSE.tooBig);
  assert.equal(l.aHost.closed?.wasReady, true);
});

// --- time -------------------------------------------------------------------

test(`the master closes with ${CLOSE.timeout} an agent that does not finish the handshake in time`, async () => {
  for (const says of ['nothing', 'hello only']) {
    const l = link({ noAgent: true });
    if (says === 'hello only') l.aSock.send(hello());
    await settle();
    l.clock.advance(HANDSHAKE_TIMEOUT_MS - 1);
    await settle();
    assert.equal(l.mSock.closed, null, `${says}: still waiting 1 ms before the deadline`);
    l.clock.advance(1);
    await settle();
    assert.equal(closeCode(l.mSock), CLOSE.timeout, says);
  }
});

test('a peer that never authenticates is a refusal: timed out, or gone after its hello', async () => {
  for (const ends of ['timeout', 'peer closes'] as const) {
    const l = link({ noAgent: true });
    l.aSock.send(hello());
    await settle();
    assert.deepEqual(l.mHost.refused, [], `${ends}: nothing yet`);
    if (ends === 'timeout') l.clock.advance(HANDSHAKE_TIMEOUT_MS);
    else l.aSock.close(1000, 'bye');
    await settle();
    assert.equal(l.mHost.refused.length, 1, `${ends}: counted once: ${l.mHost.refused.join('; ')}`);
    assert.match(l.mHost.refused[0]!, ends === 'timeout' ? /handshake timeout/ : /before authenticating/);
  }
  // A completed handshake that later ends is no refusal.
  const ok = await connected();
  ok.aSock.close(1000, 'bye');
  await settle();
  assert.deepEqual(ok.mHost.refused, []);
});

test('the agent drops a master that does not finish the handshake in time', async () => {
  const l = link({ noMaster: true });
  await settle();
  l.clock.advance(HANDSHAKE_TIMEOUT_MS - 1);
  await settle();
  assert.equal(l.aSock.closed, null);
  l.clock.advance(1);
  await settle();
  assert.equal(l.aSock.terminated, true);
  assert.equal(l.aHost.closed?.code, CLOSE_ABNORMAL);
  assert.equal(l.aHost.closed?.wasReady, false);
  assert.ok(l.aLog.some((x) => /did not complete the handshake in time/.test(x.msg)));
});

test('a completed handshake leaves no deadline behind', async () => {
  const l = await connected();
  await run(l, HANDSHAKE_TIMEOUT_MS * 3, 1_000);
  assert.equal(l.mSock.closed, null);
  assert.equal(l.aSock.closed, null);
});

test('heartbeats keep an idle connection up on both sides', async () => {
  const l = await connected({ masterHeartbeatMs: 100, agentHeartbeatMs: 100 });
  await run(l, 2_000, 25);
  assert.equal(l.mSock.closed, null);
  assert.equal(l.aSock.closed, null);
  assert.ok(l.clock.waiting >= 2, 'both heartbeats still scheduled');
});

test('the master drops an agent that stops answering heartbeats, after two intervals', async () => {
  const l = await connected({ masterHeartbeatMs: 100, agentHeartbeatMs: 100 });
  l.aSock.answerPings = false;
  await run(l, 199, 1);
  assert.equal(l.mSock.closed, null, 'one missed pong is tolerated');
  await run(l, 1, 1);
  assert.equal(l.mSock.terminated, true);
  assert.equal(closeCode(l.mSock), CLOSE_ABNORMAL);
  assert.equal(l.mHost.closed, 1);
  assert.ok(l.mLog.some((x) => /agent stopped answering heartbeats/.test(x.msg)));
});

test('the agent drops a master that stops sending heartbeats, after at most four intervals', async () => {
  // The master's heartbeat is far off: it never pings within the test.
  const l = await connected({ masterHeartbeatMs: 1_000_000, agentHeartbeatMs: 100 });
  await run(l, 399, 1);
  assert.equal(l.aSock.closed, null);
  await run(l, 1, 1);
  assert.equal(l.aSock.terminated, true);
  assert.equal(l.aHost.closed?.code, CLOSE_ABNORMAL);
  assert.equal(l.aHost.closed?.wasReady, true);
  assert.ok(l.aLog.some((x) => /master stopped sending heartbeats/.test(x.msg)));
});

test("the master's close gives a silent peer a grace period, then drops the socket", async () => {
  const l = await connected();
  const mSock = l.mSock;
  // The close frame is lost on the way: the peer never answers it.
  mSock.close = () => undefined;
  l.master!.close(CLOSE.shutdown, 'master shutting down');
  await settle();
  assert.equal(mSock.terminated, false);
  l.clock.advance(1_999);
  assert.equal(mSock.terminated, false);
  l.clock.advance(1);
  await settle();
  assert.equal(mSock.terminated, true);
  assert.equal(closeCode(mSock), CLOSE_ABNORMAL);
});

// --- the budget of an authenticated agent ---------------------------------

/** The agent's end sends `n` progress frames at once, as a flood would. */
function flood(l: Link, n: number): void {
  for (let i = 0; i < n; i++) l.agent!.send({ t: 'progress', path: 'www', percent: i % 101 });
}

test(`the master closes with ${CLOSE.tooMany} an agent that floods it, before checking the signature of the frame over budget`, async () => {
  const l = await connected();
  flood(l, AGENT_FRAME_RATE.burst);
  await settle();
  assert.equal(l.mHost.messages.length, AGENT_FRAME_RATE.burst, 'the whole burst is served');
  assert.equal(l.mSock.closed, null);
  const verified = l.mHost.verified;
  // One more, with a bad signature: refused for its cost, not its signature, and never verified.
  l.aSock.send(agentFrame(l, { t: 'ack', seq: 0, n: 1_000_000 }, key()));
  await settle();
  assert.equal(closeCode(l.mSock), CLOSE.tooMany, JSON.stringify(l.mSock.closed));
  assert.equal(closeCode(l.aSock), CLOSE.tooMany, 'the agent sees why');
  assert.match(l.mSock.closed!.reason, /too many frames/);
  assert.equal(l.mHost.verified, verified, 'the frame over budget cost no signature check');
  assert.equal(l.master!.phase, 'closed');
  assert.equal(l.mHost.refused.length, 1, 'counted as a refusal');
  assert.match(l.mHost.refused[0]!, /too many frames/);
  assert.ok(l.mLog.some((x) => x.level === 'warn' && /more frames than any real agent/.test(x.msg)));
});

test('a flood of large frames runs out sooner: a frame costs one unit per started unitBytes', async () => {
  const rate: FrameRate = { perSecond: 10, burst: 100, unitBytes: 1024, perBatch: 2 };
  const l = await connected({ frameRate: rate });
  // Each result of over 3 KiB costs 4 units: far fewer than 100 frames fit.
  const run = { path: 'www', full: false, kind: 'fatal', exit: 1, message: 'x'.repeat(3000), files: 0, bytes: 0, deleted: 0, durationMs: 1 };
  for (let i = 0; i < 100; i++) l.agent!.send({ t: 'result', seq: 1, ok: false, runs: [run] });
  await settle();
  assert.equal(closeCode(l.mSock), CLOSE.tooMany);
  const cost = Math.ceil(l.aSock.sent.at(-1)!.length / rate.unitBytes);
  assert.ok(cost >= 3, `a frame of ${l.aSock.sent.at(-1)!.length} bytes`);
  assert.equal(l.mHost.messages.length, Math.floor(rate.burst / cost), `a hundred units buy frames of ${cost} units`);
});

test('a real agent at its busiest pace is never cut off', async () => {
  // With the default delay (50 ms): a batch every 50 ms, acked and answered,
  // and progress once a second for each of ten paths, for a minute.
  // (test/unit/frame-budget.test.ts holds ten times this pace to the budget.)
  const l = await connected();
  for (let t = 0, seq = 1; t < 60_000; t += 50, seq++) {
    l.master!.sendFrame(batch(l, seq));
    if (seq > 1) l.agent!.send({ t: 'result', seq: seq - 1, ok: true, runs: [] });
    if (t % 100 === 0) l.agent!.send({ t: 'progress', path: 'www', percent: 50 });
    await settle();
    l.clock.advance(50);
  }
  await settle();
  assert.equal(l.mSock.closed, null, JSON.stringify(l.mSock.closed));
  assert.deepEqual(l.mHost.refused, []);
  assert.equal(l.mHost.messages.length, 1200 * 2 - 1 + 600);
});

test('the budget refills with the clock, up to the burst', async () => {
  const rate: FrameRate = { perSecond: 100, burst: 50, unitBytes: 4096, perBatch: 2 };
  // Heartbeats out of the way: the clock jumps an hour without pongs in between.
  const l = await connected({ frameRate: rate, masterHeartbeatMs: 1e10, agentHeartbeatMs: 1e10 });
  flood(l, 50);
  await settle();
  assert.equal(l.mHost.messages.length, 50);
  // 200 ms regain 20 frames; a long pause regains no more than the burst.
  l.clock.advance(200);
  flood(l, 20);
  await settle();
  assert.equal(l.mHost.messages.length, 70);
  assert.equal(l.mSock.closed, null, 'the refilled budget is spent to the last unit, and no further');
  l.clock.advance(3_600_000);
  flood(l, 50);
  await settle();
  assert.equal(l.mHost.messages.length, 120);
  assert.equal(l.mSock.closed, null);
  flood(l, 1);
  await settle();
  assert.equal(closeCode(l.mSock), CLOSE.tooMany);
  assert.equal(l.mHost.messages.length, 120);
});

test('each batch the master sends makes room for its ack and result, however short the delay', async () => {
  // A budget with no time in it: only the batches pay for the answers.
  const rate: FrameRate = { perSecond: 0, burst: 10, unitBytes: 4096, perBatch: 2 };
  const l = await connected({ frameRate: rate });
  for (let seq = 1; seq <= 500; seq++) {
    l.master!.sendFrame(batch(l, seq));
    await settle();
    l.agent!.send({ t: 'result', seq, ok: true, runs: [] });
  }
  await settle();
  assert.equal(l.mSock.closed, null);
  assert.equal(l.mHost.messages.length, 1000);
  flood(l, 11);
  await settle();
  assert.equal(closeCode(l.mSock), CLOSE.tooMany);
});
