// The agent's side of the handshake against 10,000 seeded hostile challenges
// and welcomes, in process: each one must end in a refusal with a protocol
// close code (or leave the agent waiting, then timed out), never in an
// exception, a ready session or a timer left behind. The welcome is vetted as
// agent.ts vets it. security-fuzz.test.ts does the same at scale over real
// sockets for the master's handshake and the agent's batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { ManualClock } from '../harness/manual-clock.js';
import { quietLog } from '../harness/quiet-log.js';
import { framePair, settle } from '../harness/frame-pair.js';
import { Rng } from '../harness/rng.js';
import { MasterSession, type MasterSessionHost } from '../src/agent/master-session.js';
import { credentialsProblem, welcomeProblem } from '../src/agent/welcome-check.js';
import { decode, encode } from '../src/protocol/codec.js';
import { open, seal } from '../src/protocol/envelope.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { CLOSE, connectionId, sealCredentials, type RsyncCredentials } from '../src/protocol/handshake.js';
import { HANDSHAKE_TIMEOUT_MS } from '../src/protocol/limits.js';
import { parseAuth, parseHello, type Welcome } from '../src/protocol/messages.js';
import { signerFromSeed, verifierFor } from '../src/protocol/sign.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';

const FRAMES = Number(process.env.INOSYNC_FUZZ_FRAMES ?? 10_000);
const SEED = Number(process.env.INOSYNC_FUZZ_SEED ?? 20261203);
const NODE = 'mirror1';

class Host implements MasterSessionHost {
  ready = false;
  closed: number | null = null;
  position() {
    return { session: null, seq: 0 };
  }
  onWelcome(_s: MasterSession, w: Welcome, creds: RsyncCredentials): void {
    const problem = welcomeProblem(w, { overTls: false, allowPlainRsync: false }) ?? credentialsProblem(creds);
    if (problem !== null) throw new ProtocolError(CLOSE.protocol, problem);
  }
  onReady(): void {
    this.ready = true;
  }
  onBatch(): void {}
  onRejected(): void {}
  onClosed(_s: MasterSession, code: number): void {
    this.closed = code;
  }
}

/** A random msgpack-able value: what a hostile master could sign and send. */
function junk(r: Rng, depth = 0): unknown {
  switch (r.below(depth > 2 ? 6 : 9)) {
    case 0: return r.int(-(2 ** 31), 2 ** 31);
    case 1: return r.pick(['', '.', '..', '/', 'a\0b', 'www', '*', '\u009b2J', 'x'.repeat(r.int(0, 5000))]);
    case 2: return new Uint8Array(r.bytes(r.pick([0, 1, 16, 32, 33, 4096])));
    case 3: return r.pick([null, true, false, undefined]);
    case 4: return r.next() * 1e300;
    case 5: return r.pick([Number.NaN, -0, Number.MAX_SAFE_INTEGER + 2]);
    case 6: return Array.from({ length: r.int(0, 4) }, () => junk(r, depth + 1));
    default: return Object.fromEntries(Array.from({ length: r.int(0, 4) }, () => [r.pick(['t', 'v', 'conn', 'n', 'paths', 'creds', 'name', '__proto__', 'x']), junk(r, depth + 1)]));
  }
}

/** `value` with one field replaced, removed, or the whole value bit-flipped after encoding. */
function mutate(r: Rng, value: Record<string, unknown>): unknown {
  const keys = Object.keys(value);
  const k = r.pick(keys);
  switch (r.below(3)) {
    case 0: return { ...value, [k]: junk(r) };
    case 1: return Object.fromEntries(Object.entries(value).filter(([key]) => key !== k));
    default: return { ...value, [r.pick(['extra', 'paths', 'creds', 'conn'])]: junk(r) };
  }
}

test(`the agent's handshake refuses ${FRAMES} hostile challenges and welcomes (seed ${SEED})`, async () => {
  const r = new Rng(SEED);
  const masterKey = signerFromSeed(new Uint8Array(r.bytes(32)));
  const agentKey = signerFromSeed(new Uint8Array(r.bytes(32)));
  const outcomes = new Map<string, number>();
  const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  for (let i = 0; i < FRAMES; i++) {
    const clock = new ManualClock();
    const [mSock, aSock] = framePair();
    const host = new Host();
    const s = new MasterSession(aSock, host, { name: NODE, signer: agentKey, master: verifierFor(masterKey.publicKey), log: quietLog, url: 'ws://fuzz', clock });
    s.start();
    const hello = parseHello(decode(aSock.sent[0]!));
    const nonce = new Uint8Array(r.bytes(32));
    const session = new Uint8Array(r.bytes(16));
    const challenge = { t: 'challenge', v: PROTOCOL_VERSION, session, nonce, echo: hello.nonce, name: NODE };
    const sign = (v: unknown) => seal(masterKey, 'master->agent', encode(v));
    const where = `frame ${i} (seed ${SEED})`;
    let frame: Uint8Array;
    const kind = r.below(5);
    if (kind === 0) frame = new Uint8Array(r.bytes(r.int(0, 300)));
    else if (kind === 1) frame = sign(junk(r));
    else if (kind === 2) frame = sign(mutate(r, challenge));
    else {
      // A valid challenge first, then a hostile welcome.
      mSock.send(sign(challenge));
      await settle();
      const sent = aSock.sent[1];
      if (!sent) {
        count('no auth');
        assert.fail(`${where}: the agent did not answer a valid challenge`);
      }
      const auth = parseAuth(decode(open(verifierFor(agentKey.publicKey), 'agent->master', sent)!));
      const box = nacl.box.keyPair();
      const creds = r.chance(0.5) ? { user: NODE, password: 'pw' } : { user: junk(r) as string, password: junk(r) as string };
      let sealed: unknown;
      try {
        sealed = sealCredentials(creds, auth.boxKey, box);
      } catch {
        sealed = new Uint8Array(r.bytes(48));
      }
      const welcome = { t: 'welcome', conn: connectionId(hello.nonce, nonce), n: 0, node: NODE, session, boxKey: box.publicKey, creds: sealed, rsyncPort: 873, rsyncTls: false, paths: [{ name: 'www', exclude: [r.pick(['a\0b', '', '!', '- x', 'a//b', 'x'.repeat(5000), '\n'])] }] };
      frame = kind === 3 ? sign(mutate(r, welcome)) : sign(welcome);
      if (kind === 4 && r.chance(0.5)) {
        frame = new Uint8Array(frame);
        frame[r.below(frame.length)]! ^= 1 << r.below(8);
      }
    }
    mSock.send(frame);
    await settle();
    if (host.ready) {
      // Only a welcome the agent's own checks accept gets here (a mutation
      // can leave one valid: an empty path list, an extra field).
      assert.equal(kind, 3, `${where}: a hostile ${['raw', 'junk', 'challenge', 'welcome', 'welcome'][kind]} frame completed the handshake`);
      count('accepted');
      s.close(CLOSE.shutdown, 'fuzz');
      await settle();
      assert.equal(clock.waiting, 0, `${where}: a timer outlived the session`);
      continue;
    }
    if (host.closed === null) {
      // Still waiting (a frame that proves nothing): the deadline ends it.
      clock.advance(HANDSHAKE_TIMEOUT_MS);
      await settle();
      count('timed out');
    } else count(`closed ${host.closed}`);
    assert.notEqual(host.closed, null, `${where}: the agent neither refused nor timed out`);
    assert.ok([CLOSE.protocol, CLOSE.timeout, CLOSE.tooBig, CLOSE.unauthorized].includes(host.closed! as never) || host.closed === 1006, `${where}: closed with ${host.closed}`);
    assert.equal(clock.waiting, 0, `${where}: a timer outlived the session`);
  }
  // The strategies reached past the signature and the shape checks.
  assert.ok((outcomes.get(`closed ${CLOSE.protocol}`) ?? 0) > FRAMES / 4, `outcomes: ${JSON.stringify([...outcomes])}`);
});
