// src/protocol/sign.ts replaces tweetnacl's ed25519 with node:crypto's. Peers
// built with either must interoperate: same public key from a seed, same
// signature bytes (ed25519 is deterministic), and each verifies the other's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { signerFromSeed, verifierFor } from '../src/protocol/sign.js';

const rand = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('node:crypto and tweetnacl give byte-identical keys and signatures, and verify each other', () => {
  const lengths = [0, 1, 31, 32, 63, 64, 65, 127, 128, 4096, 65_536];
  for (let i = 0; i < 300; i++) {
    const seed = rand(32);
    const msg = rand(i < lengths.length ? lengths[i]! : Math.floor(Math.random() * 10_000));
    const ours = signerFromSeed(seed);
    const kp = nacl.sign.keyPair.fromSeed(seed);
    assert.equal(hex(ours.publicKey), hex(kp.publicKey), `public key, seed ${hex(seed)}`);
    const a = ours.sign(msg);
    const b = nacl.sign.detached(msg, kp.secretKey);
    assert.equal(a.length, 64);
    assert.equal(hex(a), hex(b), `signature, seed ${hex(seed)}, ${msg.length} bytes`);
    assert.ok(nacl.sign.detached.verify(msg, a, kp.publicKey), 'tweetnacl verifies node:crypto');
    assert.ok(verifierFor(kp.publicKey).verify(msg, b), 'node:crypto verifies tweetnacl');
  }
});

test('both reject the same forgeries', () => {
  for (let i = 0; i < 100; i++) {
    const seed = rand(32);
    const msg = rand(1 + Math.floor(Math.random() * 2048));
    const ours = signerFromSeed(seed);
    const sig = ours.sign(msg);
    const v = verifierFor(ours.publicKey);
    const flipped = Uint8Array.from(sig);
    flipped[i % 64]! ^= 1 << (i % 8);
    const altered = Uint8Array.from(msg);
    altered[i % altered.length]! ^= 0x80;
    const other = signerFromSeed(rand(32)).publicKey;
    for (const [m, s, pk, what] of [
      [msg, flipped, ours.publicKey, 'flipped signature bit'],
      [altered, sig, ours.publicKey, 'altered message'],
      [msg, sig, other, 'another key'],
    ] as const) {
      assert.equal(verifierFor(pk).verify(m, s), false, `node:crypto accepted ${what}`);
      assert.equal(nacl.sign.detached.verify(m, s, pk), false, `tweetnacl accepted ${what}`);
    }
    assert.equal(v.verify(msg, sig.subarray(0, 63)), false, 'short signature');
  }
});
