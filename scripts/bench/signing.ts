// signing: sealing and opening one 4 KiB batch frame (src/protocol/envelope.ts)
// with node:crypto's ed25519 (what inosync uses) against tweetnacl's, plus a
// check that both produce byte-identical signatures and verify each other's.
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { open, seal } from '../../src/protocol/envelope.js';
import { signerFromSeed, verifierFor, type Signer, type Verifier } from '../../src/protocol/sign.js';
import { limitRow, ratioRow, round, type Ctx, type WorkloadResult } from './lib.js';

function naclSigner(seed: Uint8Array): Signer {
  const kp = nacl.sign.keyPair.fromSeed(seed);
  return { publicKey: kp.publicKey, sign: (data) => nacl.sign.detached(data, kp.secretKey) };
}

function naclVerifier(publicKey: Uint8Array): Verifier {
  return { publicKey, verify: (data, sig) => sig.length === 64 && nacl.sign.detached.verify(data, sig, publicKey) };
}

/** µs per call of `fn`, over at least `ms` of running (after a warm-up). */
function perCall(fn: () => void, ms: number): number {
  for (let i = 0; i < 20; i++) fn();
  let n = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < 10; i++) fn();
    n += 10;
    t = performance.now();
  }
  return ((t - t0) * 1000) / n;
}

/** Random seeds and messages: identical signatures, and each verifies the other's. */
export function crossCheck(count: number): { identical: number; crossVerified: number; count: number } {
  let identical = 0;
  let crossVerified = 0;
  for (let i = 0; i < count; i++) {
    const seed = new Uint8Array(randomBytes(32));
    const msg = new Uint8Array(randomBytes(Math.floor(Math.random() * 8192)));
    const a = signerFromSeed(seed);
    const b = naclSigner(seed);
    const sa = a.sign(msg);
    const sb = b.sign(msg);
    if (Buffer.from(sa).equals(Buffer.from(sb)) && Buffer.from(a.publicKey).equals(Buffer.from(b.publicKey))) identical++;
    if (naclVerifier(a.publicKey).verify(msg, sa) && verifierFor(b.publicKey).verify(msg, sb)) crossVerified++;
  }
  return { identical, crossVerified, count };
}

export async function signing(ctx: Ctx): Promise<WorkloadResult> {
  const ms = ctx.quick ? 300 : 1000;
  const seed = new Uint8Array(randomBytes(32));
  const body = new Uint8Array(randomBytes(4096));
  const node = { s: signerFromSeed(seed), v: verifierFor(signerFromSeed(seed).publicKey) };
  const tw = { s: naclSigner(seed), v: naclVerifier(naclSigner(seed).publicKey) };
  const frame = seal(node.s, 'master->agent', body);
  const measure = (k: { s: Signer; v: Verifier }) => ({
    sign: perCall(() => seal(k.s, 'master->agent', body), ms),
    verify: perCall(() => {
      if (open(k.v, 'master->agent', frame) === null) throw new Error('verification failed');
    }, ms),
    both: perCall(() => {
      if (open(k.v, 'master->agent', seal(k.s, 'master->agent', body)) === null) throw new Error('verification failed');
    }, ms),
  });
  // Interleaved twice, the better of each: a noisy neighbour slows one pass, not both.
  const n1 = measure(node);
  const t1 = measure(tw);
  const n2 = measure(node);
  const t2 = measure(tw);
  const best = (a: Record<string, number>, b: Record<string, number>) =>
    Object.fromEntries(Object.keys(a).map((k) => [k, Math.min(a[k]!, b[k]!)])) as { sign: number; verify: number; both: number };
  const n = best(n1, n2);
  const t = best(t1, t2);
  // tweetnacl takes ~40 ms per sign+verify here: 300 pairs keep this under 15 s (test/sign.test.ts checks 300 more).
  const check = crossCheck(ctx.quick ? 100 : 300);
  ctx.log(`  node:crypto ${round(n.both)} µs, tweetnacl ${round(t.both)} µs per seal+open of 4 KiB`);
  const what = 'tweetnacl';
  return {
    name: 'signing',
    rows: [
      ratioRow('signing', 'seal + open, 4 KiB batch', n.both, 'µs', t.both, what, 1),
      ratioRow('signing', 'seal (sign) only', n.sign, 'µs', t.sign, what),
      ratioRow('signing', 'open (verify) only', n.verify, 'µs', t.verify, what),
      limitRow('signing', `byte-identical signatures, random keys/messages`, check.identical, `of ${check.count}`, check.count, '<='),
      limitRow('signing', `cross-verified both ways`, check.crossVerified, `of ${check.count}`, check.count, '<='),
    ].map((r) => (r.unit.startsWith('of ') ? { ...r, target: `= ${check.count}`, met: r.value === check.count } : r)),
    notes: ['seal/open from src/protocol/envelope.ts (direction label + 4 KiB body), same seed for both libraries; target for speed: node:crypto no slower than tweetnacl'],
    data: { nodeCrypto: n, tweetnacl: t, check },
  };
}
