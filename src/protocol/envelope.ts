// Every frame after the first hello is `signature(64) || body`. The signature
// covers a direction label and the body's exact bytes, so a frame cannot be
// reflected back to its sender, and nothing is decoded before it verifies.
import type { Signer, Verifier } from './sign.js';

export type Direction = 'master->agent' | 'agent->master';

const SIG_LEN = 64;
const LABELS: Record<Direction, Buffer> = {
  'master->agent': Buffer.from('inosync/1 master->agent\0'),
  'agent->master': Buffer.from('inosync/1 agent->master\0'),
};

function signedBytes(dir: Direction, body: Uint8Array): Buffer {
  return Buffer.concat([LABELS[dir], body]);
}

export function seal(signer: Signer, dir: Direction, body: Uint8Array): Uint8Array {
  const sig = signer.sign(signedBytes(dir, body));
  const frame = new Uint8Array(SIG_LEN + body.length);
  frame.set(sig, 0);
  frame.set(body, SIG_LEN);
  return frame;
}

/** The body if the frame carries a valid signature by `verifier`, else null. */
export function open(verifier: Verifier, dir: Direction, frame: Uint8Array): Uint8Array | null {
  if (frame.length <= SIG_LEN) return null;
  const sig = frame.subarray(0, SIG_LEN);
  const body = frame.subarray(SIG_LEN);
  return verifier.verify(signedBytes(dir, body), sig) ? body : null;
}
