// Seeded fuzzing of both ends of the protocol with real processes: thousands
// of random and mutated frames at a master (before, during and after
// authentication) and at an agent (after its handshake, many of them signed
// with the real master key so they get past the signature and hit decoding
// and validation). Every frame's fate is predicted by an oracle built from
// the protocol modules, and the processes must behave exactly so: the master
// closes the connection on every bad frame, the agent rejects and reports
// every bad frame, and both keep serving their legitimate peer, within a
// bound on time and without their memory (RSS, after a warm-up) growing.
//
// INOSYNC_FUZZ_SEED=<n> replays a run; the seed is printed with any failure.
// INOSYNC_FUZZ_FRAMES=<n> sends n frames to each side (10,000 by default).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { Cluster } from '../harness/cluster.js';
import { FakeAgent } from '../harness/fake-agent.js';
import { FakeMaster, type FakePeer } from '../harness/fake-master.js';
import { findFreePort } from '../harness/ports.js';
import { agentPub, listTree, masterPub, signerOf } from '../harness/security.js';
import { Rng } from '../harness/rng.js';
import { decode, DecodeError, encode } from '../src/protocol/codec.js';
import { open, seal } from '../src/protocol/envelope.js';
import { CLOSE, connectionId, sameBytes } from '../src/protocol/handshake.js';
import { formatPublicKey } from '../src/protocol/keys.js';
import { MAX_AGENT_FRAME, MAX_HANDSHAKE_FRAME } from '../src/protocol/limits.js';
import { parseAgentMessage, parseAuth, parseBatch, parseHello } from '../src/protocol/messages.js';
import { signerFromSeed, verifierFor, type Signer, type Verifier } from '../src/protocol/sign.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';

const SEED = Number(process.env.INOSYNC_FUZZ_SEED ?? 20_251_124);
const FRAMES = Number(process.env.INOSYNC_FUZZ_FRAMES ?? 10_000);
// Every bad frame costs the master a connection (it closes on the first);
// lanes, each its own node and address, make them in parallel.
const TO_MASTER = { hello: Math.round(FRAMES * 0.3), auth: Math.round(FRAMES * 0.2), ready: FRAMES - Math.round(FRAMES * 0.3) - Math.round(FRAMES * 0.2) };
const TO_AGENT = FRAMES;
const LANES = 8;
/** The share of the frames sent before memory is first measured. */
const WARM_UP = 0.1;
/** Growth of a process's resident memory that would mean a leak, not the allocator's slack. */
const MAX_RSS_GROWTH = 64 * 1024 * 1024;
/** Milliseconds one frame may take on average, all its checks included, before the run counts as hung. */
const MAX_MS_PER_FRAME = 8;

/** A process's resident memory, from /proc. */
function rss(pid: number | undefined): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** `n` split over the lanes, the first ones taking the remainder. */
const share = (n: number, lane: number): number => Math.floor(n / LANES) + (lane < n % LANES ? 1 : 0);

const cat = (...parts: (Uint8Array | number[])[]): Uint8Array => new Uint8Array(Buffer.concat(parts.map((p) => Buffer.from(p as Uint8Array))));

/** Values of every type but the expected one. */
function weird(r: Rng): unknown {
  return r.pick<() => unknown>([
    () => null, () => true, () => 0, () => -1, () => 1.5, () => NaN, () => Infinity, () => 2 ** 53, () => -(2 ** 63),
    () => '', () => 'x', () => '\0', () => 'a'.repeat(5000), () => '../../etc/passwd', () => '/etc/passwd',
    () => [], () => [null], () => [[[[[]]]]], () => ({}), () => ({ t: 'batch' }), () => new Uint8Array(0), () => r.bytes(16), () => r.bytes(33),
    () => Array.from({ length: 2000 }, (_, i) => `p${i}`),
  ])();
}

/** Msgpack nobody should send: huge declared lengths, deep nesting, extension types, 0xc1, odd keys, trailing bytes. */
function hostileMsgpack(r: Rng): Uint8Array {
  switch (r.below(9)) {
    case 0: {
      const head = r.pick([[0xdd, 0xff, 0xff, 0xff, 0xff], [0xdc, 0xff, 0xff], [0xdf, 0xff, 0xff, 0xff, 0xff], [0xdb, 0xff, 0xff, 0xff, 0xff], [0xc6, 0xff, 0xff, 0xff, 0xff], [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], [0xde, 0xff, 0xff], [0xda, 0xff, 0xff]]);
      const inMap = r.chance(0.5) ? [0x82, 0xa1, 0x74, 0xa5, ...Buffer.from('batch'), 0xa7, ...Buffer.from('changes')] : [];
      return cat(inMap, head, r.bytes(r.below(64)));
    }
    case 1: {
      const depth = r.pick([100, 1_000, 10_000, 100_000]);
      const level = r.chance(0.5) ? [0x91] : [0x81, 0xa1, 0x61];
      return cat(Buffer.alloc(depth * level.length).fill(Buffer.from(level)), [0xc0]);
    }
    case 2: {
      const type = r.pick([0xff, 0x72, 0x73, 0x65, 0x78, 0x74, 0x70, 0x62, 0x00, 0x01, r.below(256)]);
      const payload = r.bytes(r.pick([1, 2, 4, 8, 16, r.below(40)]));
      const fixed: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
      const head = fixed[payload.length] !== undefined && r.chance(0.7) ? [fixed[payload.length]!, type] : [0xc7, payload.length, type];
      return cat(r.chance(0.5) ? [0x81, 0xa1, 0x74] : [], head, payload);
    }
    case 3:
      return cat([0x82, 0xa1, 0x74, 0xa5, ...Buffer.from('batch'), 0xa3, ...Buffer.from('seq'), 0xc1]);
    case 4:
      return r.chance(0.5) ? cat([0x81, 0x91, 0x01, 0x01]) : cat([0x81, 0xa9, ...Buffer.from('__proto__'), 0x81, 0xa1, 0x74, 0xa5, ...Buffer.from('batch')]);
    case 5:
      return r.bytes(1 + r.below(r.chance(0.9) ? 300 : 5000));
    case 6:
      return encode(weird(r));
    case 7:
      return cat(encode({ t: 'batch' }), encode(weird(r)));
    default:
      return new Uint8Array(0);
  }
}

/** A body that starts as `base` and is then broken, still or no longer decodable. */
function mutateBody(r: Rng, base: Record<string, unknown>): Uint8Array {
  const o: Record<string, unknown> = { ...base };
  const keys = Object.keys(o);
  switch (r.below(7)) {
    case 0:
    case 1:
      o[r.pick(keys)] = weird(r);
      return encode(o);
    case 2:
      delete o[r.pick(keys)];
      return encode(o);
    case 3:
      // An own property even for __proto__, which plain assignment would turn into the prototype.
      Object.defineProperty(o, r.pick(['extra', 'constructor', '__proto__', 'T', '']), { value: weird(r), enumerable: true, configurable: true, writable: true });
      return encode(o);
    case 4:
      return hostileMsgpack(r);
    case 5:
      return flipBits(r, encode(o), 1 + r.below(4));
    default: {
      const b = encode(o);
      return r.chance(0.5) ? b.subarray(0, r.below(b.length)) : cat(b, r.bytes(1 + r.below(20)));
    }
  }
}

function flipBits(r: Rng, b: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(b);
  if (out.length === 0) return out;
  for (let i = 0; i < n; i++) out[r.below(out.length)]! ^= 1 << r.below(8);
  return out;
}

/** A signed frame broken after signing: the signature can no longer hold. */
function mutateFrame(r: Rng, frame: Uint8Array): Uint8Array {
  switch (r.below(3)) {
    case 0:
      return flipBits(r, frame, 1 + r.below(8));
    case 1:
      return frame.subarray(0, r.below(frame.length));
    default:
      return cat(frame, r.bytes(1 + r.below(100)));
  }
}

describe('security: fuzzing master and agent', { timeout: 600_000 }, () => {
  let c: Cluster;
  let fm: FakeMaster;
  const fuzzNodes = Array.from({ length: LANES }, (_, i) => ({ name: `fuzz${i}`, signer: signerFromSeed(new Uint8Array(randomBytes(32))) }));
  const seedNote = `(INOSYNC_FUZZ_SEED=${SEED})`;

  before(async () => {
    c = await new Cluster({
      agents: 2,
      nodes: (n) => [...n, ...fuzzNodes.map((f) => ({ name: f.name, key: formatPublicKey(f.signer.publicKey) }))],
    }).setup();
    mkdirSync(join(c.origin(), 'told'));
    mkdirSync(join(c.origin(), 'untold'));
    for (let i = 0; i < 20; i++) writeFileSync(join(c.origin(), 'told', `f${i}.txt`), `told ${i}`);
    writeFileSync(join(c.origin(), 'untold', 'secret.txt'), 'nobody told the agent to fetch this');
    await c.startMaster();
    c.startAgent(0);
    // mirror1 follows a fake master holding the real master key, on its own port and rsync daemon.
    const port = await findFreePort();
    fm = await new FakeMaster({
      port,
      signer: signerOf(c, 'master'),
      agents: new Map([['mirror1', agentPub(c, 1)]]),
      paths: [{ name: 'www' }],
      rsync: { port: await findFreePort(), modules: [{ name: 'www', path: c.origin() }], nodes: ['mirror1'] },
    }).start();
    const cfg = JSON.parse(readFileSync(c.agentConfig(1), 'utf8')) as { master: Record<string, unknown> };
    const file = join(c.dir, 'agent1-fake.yaml');
    writeFileSync(file, JSON.stringify({ ...cfg, master: { ...cfg.master, url: `ws://127.0.0.1:${port}` } }));
    c.startAgent(1, ['-c', file]);
    await c.waitConverged(0);
  });

  after(async () => {
    await c?.cleanup();
    await fm?.stop();
  });

  test('the codec returns plain data or a DecodeError for anything', () => {
    const r = new Rng(SEED ^ 0xc0dec);
    const plain = (v: unknown): boolean => {
      if (v === null || ['boolean', 'number', 'string'].includes(typeof v) || v instanceof Uint8Array) return true;
      if (Array.isArray(v)) return v.every(plain);
      return typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype && Object.values(v as object).every(plain);
    };
    const base = { t: 'batch', session: r.bytes(16), seq: 1, to: ['a'], time: 1, changes: [{ name: 'www', full: false, files: ['a'], dirs: [], trees: [] }] };
    for (let i = 0; i < 4000; i++) {
      const bytes = i % 2 === 0 ? hostileMsgpack(r) : mutateBody(r, base);
      try {
        assert.ok(plain(decode(bytes)), `non-plain value from ${Buffer.from(bytes.subarray(0, 40)).toString('hex')} ${seedNote}`);
      } catch (err) {
        if (!(err instanceof DecodeError)) throw new Error(`${(err as Error).message} from ${Buffer.from(bytes.subarray(0, 40)).toString('hex')} ${seedNote}`);
      }
    }
  });

  test(`${TO_MASTER.hello + TO_MASTER.auth + TO_MASTER.ready} hostile frames at the master, before, during and after authentication`, async () => {
    const url = `ws://127.0.0.1:${c.masterPort}`;
    const box = nacl.box.keyPair();
    const masterKey = masterPub(c);
    const masterVerifier = verifierFor(masterKey);
    const known = new Set(['mirror0', 'mirror1', ...fuzzNodes.map((f) => f.name)]);
    const counts = { frames: 0, connections: 0, challenged: 0, welcomed: 0, accepted: 0 };

    // One generator per lane for the whole run: each lane's sequence then depends on the seed alone.
    const rngs = Array.from({ length: LANES }, (_, i) => new Rng(SEED + i));
    const lane = async (i: number, budget: { hello: number; auth: number; ready: number }): Promise<void> => {
      const r = rngs[i]!;
      const me = fuzzNodes[i]!;
      const mine = verifierFor(me.signer.publicKey);
      const localAddress = `127.0.0.${50 + i}`;
      const connect = async () => {
        counts.connections++;
        return FakeAgent.connect({ url, name: me.name, signer: me.signer, masterKey, localAddress, box, skipCreds: true });
      };
      const expectClose = async (a: FakeAgent, codes: number[], what: string) => {
        const closed = await a.waitClosed(10_000).catch(() => null);
        assert.ok(closed && codes.includes(closed.code), `${what}: expected close ${codes.join('/')}, got ${JSON.stringify(closed)} ${seedNote}`);
      };

      // Before the hello: anything at all as the first frame.
      while (budget.hello > 0) {
        budget.hello--;
        const baseHello = { t: 'hello', v: PROTOCOL_VERSION, name: r.pick([...known, 'intruder']), nonce: r.bytes(32), version: 'fuzz' };
        const kind = r.below(10);
        let frame: Uint8Array | string;
        if (kind === 0) frame = 'text';
        else if (kind === 1) frame = r.bytes(r.chance(0.3) ? MAX_AGENT_FRAME + 1 + r.below(1000) : MAX_HANDSHAKE_FRAME + 1 + r.below(20_000));
        else if (kind <= 3) frame = hostileMsgpack(r);
        else if (kind <= 6) frame = mutateBody(r, baseHello);
        else frame = flipBits(r, encode(baseHello), 1 + r.below(3));
        let expect: { close: number[] } | 'challenge';
        if (typeof frame === 'string') expect = { close: [CLOSE.protocol] };
        else if (frame.length > MAX_AGENT_FRAME) expect = { close: [1009] };
        else if (frame.length > MAX_HANDSHAKE_FRAME) expect = { close: [CLOSE.protocol] };
        else {
          try {
            const h = parseHello(decode(frame));
            if (h.v !== PROTOCOL_VERSION) expect = { close: [CLOSE.protocol] };
            else expect = known.has(h.name) ? 'challenge' : { close: [CLOSE.unauthorized] };
          } catch {
            expect = { close: [CLOSE.protocol] };
          }
        }
        const a = await connect();
        a.send(frame);
        counts.frames++;
        if (expect === 'challenge') {
          const f = await a.nextFrame(0);
          assert.ok(f, `a valid hello got no challenge ${seedNote}`);
          counts.challenged++;
          a.close();
        } else {
          await expectClose(a, expect.close, `hello-phase frame ${Buffer.from(typeof frame === 'string' ? frame : frame.subarray(0, 24)).toString('hex')}`);
          assert.equal(a.frames.length, 0, `a refused peer was sent something ${seedNote}`);
        }
      }

      // Between challenge and welcome: a broken auth.
      while (budget.auth > 0) {
        budget.auth--;
        const a = await connect();
        a.hello();
        const chFrame = await a.nextFrame(0);
        assert.ok(chFrame, `no challenge for ${me.name} ${seedNote}`);
        const ch = parseHelloChallenge(chFrame, masterVerifier);
        const conn = connectionId(a.nonce, ch.nonce);
        const baseAuth = { t: 'auth', conn, n: 0, boxKey: box.publicKey, applied: null, version: 'fuzz' };
        const kind = r.below(10);
        let frame: Uint8Array | string;
        if (kind === 0) frame = 'text';
        else if (kind === 1) frame = hostileMsgpack(r);
        else if (kind === 2) frame = seal(fuzzNodes[(i + 1) % LANES]!.signer, 'agent->master', encode(baseAuth));
        else if (kind <= 4) frame = mutateFrame(r, seal(me.signer, 'agent->master', encode(baseAuth)));
        else if (kind === 5) frame = seal(me.signer, 'agent->master', encode({ ...baseAuth, conn: r.bytes(16) }));
        else frame = seal(me.signer, 'agent->master', mutateBody(r, baseAuth));
        let expect: number | 'welcome';
        if (typeof frame === 'string') expect = CLOSE.protocol;
        else if (frame.length > MAX_AGENT_FRAME) expect = 1009;
        else if (frame.length > MAX_HANDSHAKE_FRAME) expect = CLOSE.protocol;
        else {
          const body = open(mine, 'agent->master', frame);
          if (body === null) expect = CLOSE.unauthorized;
          else {
            try {
              const auth = parseAuth(decode(body));
              expect = sameBytes(auth.conn, conn) ? 'welcome' : CLOSE.unauthorized;
            } catch {
              expect = CLOSE.protocol;
            }
          }
        }
        a.send(frame);
        counts.frames++;
        if (expect === 'welcome') {
          assert.ok(await a.nextFrame(1), `a valid auth got no welcome ${seedNote}`);
          counts.welcomed++;
          a.close();
        } else {
          await expectClose(a, [expect], 'auth-phase frame');
          assert.equal(a.frames.length, 1, `only the challenge ${seedNote}`);
        }
      }

      // Authenticated: broken, replayed, misbound and valid messages.
      let a: FakeAgent | null = null;
      let lastN = 0;
      while (budget.ready > 0) {
        budget.ready--;
        if (a === null) {
          a = await connect();
          await a.handshake({ applied: null });
          lastN = 0;
        }
        // Well-formed lies: counters, paths and figures a real agent would never report.
        const anySeq = (): number => r.pick([0, r.below(100), 2 ** 31, Number.MAX_SAFE_INTEGER]);
        const anyPath = (): string => r.pick(['www', 'nope', 'untold', 'x'.repeat(64), '-', '...']);
        const valid = (): Record<string, unknown> => {
          const t = r.pick(['ack', 'result', 'progress', 'reject']);
          const common = { conn: a!.conn, n: a!.n };
          if (t === 'ack') return { t, ...common, seq: anySeq() };
          if (t === 'progress') return { t, ...common, path: anyPath(), percent: r.pick([0, 100, r.below(101), 99.999]) };
          if (t === 'reject') return { t, ...common, seq: r.chance(0.5) ? null : anySeq(), reason: r.pick(['fuzz', '\x1b[2J\x07', 'x'.repeat(1024)]) };
          const runs = Array.from({ length: r.pick([0, 1, 1, 3, 50]) }, () => ({
            path: anyPath(),
            full: r.chance(0.3),
            kind: r.pick(['ok', 'partial-ok', 'retry', 'fatal', 'refused', 'dry-run']),
            exit: r.pick([null, 0, 23, 24, -1, 2 ** 31]),
            message: r.pick(['', 'rsync: \x1b]0;pwned\x07', 'm'.repeat(r.below(4097))]),
            files: r.pick([0, 1, Number.MAX_SAFE_INTEGER]),
            bytes: r.pick([0, 1, Number.MAX_SAFE_INTEGER]),
            deleted: r.pick([0, 5, Number.MAX_SAFE_INTEGER]),
            durationMs: r.pick([0, 1.5, 1e12]),
          }));
          return { t, ...common, seq: anySeq(), ok: r.chance(0.5), runs };
        };
        // Most frames are well-formed lies, which keep the connection; the rest end it.
        const pick = r.below(32);
        const kind = pick <= 22 ? 0 : pick - 20;
        let frame: Uint8Array | string;
        const signed = (body: Uint8Array, signer: Signer = me.signer) => seal(signer, 'agent->master', body);
        if (kind <= 2 || kind >= 12) frame = signed(encode(valid()));
        else if (kind === 3) frame = 'text';
        else if (kind === 4) frame = hostileMsgpack(r);
        else if (kind === 5) frame = mutateFrame(r, signed(encode(valid())));
        else if (kind === 6) frame = signed(encode({ ...valid(), n: r.pick([0, lastN, lastN - 1]) }));
        else if (kind === 7) frame = signed(encode({ ...valid(), conn: r.bytes(16) }));
        else if (kind === 8) frame = signed(encode(valid()), fuzzNodes[(i + 1) % LANES]!.signer);
        else if (kind === 9) frame = seal(me.signer, 'master->agent', encode(valid()));
        else if (kind === 10 && r.chance(0.1)) frame = r.bytes(MAX_AGENT_FRAME + 1);
        else frame = signed(mutateBody(r, valid()));
        // Each try consumes a counter value, as a real agent's would.
        a.n++;
        let expect: number | 'ok';
        if (typeof frame === 'string') expect = CLOSE.protocol;
        else if (frame.length > MAX_AGENT_FRAME) expect = 1009;
        else {
          const body = open(mine, 'agent->master', frame);
          expect = CLOSE.protocol;
          if (body !== null) {
            try {
              const m = parseAgentMessage(decode(body));
              if (sameBytes(m.conn, a.conn!) && m.n > lastN) {
                expect = 'ok';
                lastN = m.n;
              }
            } catch {
              // stays a protocol error
            }
          }
        }
        a.send(frame);
        counts.frames++;
        if (expect === 'ok') {
          counts.accepted++;
          continue;
        }
        await expectClose(a, [expect], `authenticated frame kind ${kind}`);
        a = null;
      }
      a?.close();
    };

    const started = Date.now();
    const pid = c.master!.child.pid;
    const round = (part: (n: number, i: number) => number) =>
      Promise.all(Array.from({ length: LANES }, (_, i) => lane(i, { hello: part(TO_MASTER.hello, i), auth: part(TO_MASTER.auth, i), ready: part(TO_MASTER.ready, i) })));
    const warm = (n: number, i: number) => Math.round(share(n, i) * WARM_UP);
    await round(warm);
    const rssBefore = rss(pid);
    await round((n, i) => share(n, i) - warm(n, i));
    const rssAfter = rss(pid);
    const ms = Date.now() - started;
    assert.equal(counts.frames, TO_MASTER.hello + TO_MASTER.auth + TO_MASTER.ready);
    assert.ok(counts.challenged > 0 && counts.welcomed > 0 && counts.accepted > 0, JSON.stringify(counts));
    process.stderr.write(`# master fuzz: ${JSON.stringify(counts)} in ${ms} ms, RSS ${rssBefore >> 20} -> ${rssAfter >> 20} MiB ${seedNote}\n`);
    assert.ok(ms < counts.frames * MAX_MS_PER_FRAME, `the master took ${ms} ms for ${counts.frames} frames: hung? ${seedNote}`);
    assert.ok(rssAfter - rssBefore < MAX_RSS_GROWTH, `the master grew from ${rssBefore >> 20} to ${rssAfter >> 20} MiB ${seedNote}`);
    // Still up, and the real agent still syncs through it.
    assert.equal(c.master!.child.exitCode, null);
    writeFileSync(join(c.origin(), 'told', 'after-master-fuzz.txt'), 'still syncing');
    await c.waitConverged(0);
    const s = await c.fetchStatus();
    assert.equal(s!.nodes.find((n) => n.name === 'mirror0')!.connected, true);
  });

  test(`${TO_AGENT} hostile frames at the agent after its handshake`, async () => {
    const peer: FakePeer = await fm.latestPeer();
    const peersBefore = fm.peers.length;
    const r = new Rng(SEED ^ 0xa9e47);
    const told = Array.from({ length: 20 }, (_, i) => `told/f${i}.txt`);
    const masterVerifier = verifierFor(masterPub(c));
    const other = signerFromSeed(new Uint8Array(randomBytes(32)));
    let lastSeq = 0;
    const allowed = new Set<string>();
    let expectedRejects = 0;
    let expectedAcks = 0;
    const baseBatch = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
      t: 'batch',
      session: peer.session,
      seq: lastSeq + 1,
      to: ['mirror1'],
      time: Date.now(),
      changes: [{ name: 'www', full: false, files: [r.pick(told), r.pick(told)].filter((f, i, l) => l.indexOf(f) === i).sort(), dirs: [], trees: [] }],
      ...over,
    });
    /** The agent's rules, from the outside: what it must accept. */
    const verdict = (frame: Uint8Array | string): { seq: number; files: string[]; full: boolean } | null => {
      if (typeof frame === 'string') return null;
      const body = open(masterVerifier, 'master->agent', frame);
      if (body === null) return null;
      try {
        const b = parseBatch(decode(body));
        if (!sameBytes(b.session, peer.session) || !b.to.includes('mirror1') || b.seq <= lastSeq || b.changes.some((ch) => ch.name !== 'www')) return null;
        return { seq: b.seq, files: b.changes.flatMap((ch) => [...ch.files, ...ch.dirs, ...ch.trees]), full: b.changes.some((ch) => ch.full) };
      } catch {
        return null;
      }
    };
    const master = signerOf(c, 'master');
    const sign = (body: Uint8Array, signer: Signer = master) => seal(signer, 'master->agent', body);
    const started = Date.now();
    const pid = c.agents[1]!.child.pid;
    let rssBefore = 0;
    let sentCount = 0;
    let seen = 0;
    let answers = 0;
    const answered = (): number => {
      for (; seen < peer.replies.length; seen++) if (peer.replies[seen]!.msg?.t === 'reject' || peer.replies[seen]!.msg?.t === 'ack') answers++;
      return answers;
    };
    for (let i = 0; i < TO_AGENT; i++) {
      let frame: Uint8Array | string;
      let v: ReturnType<typeof verdict>;
      // A frame that would validly order a full sync, or name something outside told/, would make the final check vacuous: draw again.
      for (;;) {
        const kind = r.below(20);
        if (kind === 0) frame = r.chance(0.5) ? 'text' : new Uint8Array(r.below(65));
        else if (kind <= 2) frame = hostileMsgpack(r);
        else if (kind <= 6) frame = mutateFrame(r, sign(encode(baseBatch()), master));
        else if (kind <= 14) frame = sign(mutateBody(r, baseBatch()), master);
        else if (kind === 15) frame = sign(encode(baseBatch()), other);
        else if (kind === 16) {
          const bad = r.pick<Record<string, unknown>>([
            { session: r.bytes(16) },
            { to: ['mirror0'] },
            { to: [] },
            { seq: Math.max(0, lastSeq - r.below(3)) },
            { seq: 2 ** 53 },
            { changes: [{ name: 'nope', full: false, files: ['a'], dirs: [], trees: [] }] },
            { changes: [{ name: 'www', full: false, files: [r.pick(['..', '../x', '/etc/passwd', 'a\0b', 'a//b', 'a/', '', './a', 'told/../../x'])], dirs: [], trees: [] }] },
            { changes: [{ name: 'www', full: false, files: [], dirs: [], trees: ['x'.repeat(5000)] }] },
          ]);
          frame = sign(encode(baseBatch(bad)), master);
        } else if (kind === 17) frame = sign(hostileMsgpack(r), master);
        else if (kind === 18 && r.chance(0.4)) frame = sign(encode(baseBatch()), master);
        else frame = mutateFrame(r, sign(hostileMsgpack(r), master));
        v = verdict(frame);
        if (v === null || (!v.full && v.files.every((f) => told.includes(f)))) break;
      }
      if (v === null) expectedRejects++;
      else {
        expectedAcks++;
        lastSeq = v.seq;
        for (const f of v.files) allowed.add(f);
      }
      peer.send(frame);
      sentCount++;
      // Let the agent keep up, and make sure it answers every frame with exactly one reply.
      if (sentCount % 200 === 0 || i === TO_AGENT - 1) {
        await peer.until(() => answered() >= sentCount, 60_000, `the agent to answer ${sentCount} frames ${seedNote}`);
      }
      if (sentCount === Math.round(TO_AGENT * WARM_UP)) {
        await peer.until(() => answered() >= sentCount, 60_000, `the agent to answer ${sentCount} frames ${seedNote}`);
        rssBefore = rss(pid);
      }
    }
    const rejects = peer.replies.filter((x) => x.msg?.t === 'reject').length;
    const acks = peer.replies.filter((x) => x.msg?.t === 'ack').length;
    assert.equal(rejects, expectedRejects, seedNote);
    assert.equal(acks, expectedAcks, seedNote);
    for (const x of peer.replies) assert.ok(x.msg, `an agent reply that does not verify: ${x.problem}`);
    assert.equal(peer.closed, null, 'the agent kept the connection');
    assert.equal(fm.peers.length, peersBefore, 'and never had to reconnect');
    const rssAfter = rss(pid);
    const ms = Date.now() - started;
    process.stderr.write(`# agent fuzz: ${sentCount} frames, ${rejects} rejected, ${acks} accepted in ${ms} ms, RSS ${rssBefore >> 20} -> ${rssAfter >> 20} MiB ${seedNote}\n`);
    assert.ok(ms < sentCount * MAX_MS_PER_FRAME, `the agent took ${ms} ms for ${sentCount} frames: hung? ${seedNote}`);
    assert.ok(rssAfter - rssBefore < MAX_RSS_GROWTH, `the agent grew from ${rssBefore >> 20} to ${rssAfter >> 20} MiB ${seedNote}`);

    // Still up, and a valid batch still applies.
    writeFileSync(join(c.origin(), 'told', 'final.txt'), 'the last word');
    const finalSeq = lastSeq + 1;
    peer.send(sign(encode(baseBatch({ seq: finalSeq, changes: [{ name: 'www', full: false, files: ['told/final.txt'], dirs: [], trees: [] }] })), master));
    await peer.waitReply((x) => x.msg?.t === 'result' && x.msg.seq >= finalSeq, 30_000);
    assert.equal(c.agents[1]!.child.exitCode, null);
    assert.equal(readFileSync(join(c.mirror(1), 'told', 'final.txt'), 'utf8'), 'the last word');
    // Nothing it was not validly told to write.
    allowed.add('told/final.txt');
    for (const entry of listTree(c.mirror(1))) {
      if (entry === 'told/') continue;
      assert.ok(allowed.has(entry), `${entry} in the mirror, never named by an accepted batch ${seedNote}`);
      assert.equal(readFileSync(join(c.mirror(1), entry), 'utf8'), readFileSync(join(c.origin(), entry), 'utf8'));
    }
    assert.ok(allowed.size > 1, 'some batches were accepted');
  });
});

function parseHelloChallenge(frame: Buffer, master: Verifier): { nonce: Uint8Array } {
  const body = open(master, 'master->agent', frame);
  assert.ok(body, 'the challenge is signed by the master');
  return decode(body) as { nonce: Uint8Array };
}
