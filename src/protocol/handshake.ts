// The pieces of the mutual handshake both sides must compute identically.
//
//   agent  -> master  hello      (unsigned: name, fresh agent nonce)
//   master -> agent   challenge  (signed by the master; echoes the agent nonce, adds its own nonce and the run's session id)
//   agent  -> master  auth       (signed by the agent; bound to both nonces via `conn`, carries an ephemeral box key)
//   master -> agent   welcome    (signed by the master; rsync credentials boxed to the agent's ephemeral key)
//
// Each side signs a value the other just made up, so nothing recorded from an
// earlier connection can be replayed into a new one.
import { createHash } from 'node:crypto';
import nacl from 'tweetnacl';
import { CONN_BYTES } from './messages.js';

export interface RsyncCredentials {
  user: string;
  password: string;
}

/** Identifies one connection: both nonces hashed together. */
export function connectionId(agentNonce: Uint8Array, masterNonce: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(agentNonce).update(masterNonce).digest().subarray(0, CONN_BYTES));
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && nacl.verify(a, b);
}

export function sealCredentials(
  creds: RsyncCredentials,
  agentBoxKey: Uint8Array,
  masterBox: nacl.BoxKeyPair,
): { nonce: Uint8Array; box: Uint8Array } {
  const nonce = nacl.randomBytes(nacl.box.nonceLength);
  const plain = new TextEncoder().encode(JSON.stringify({ user: creds.user, password: creds.password }));
  return { nonce, box: nacl.box(plain, nonce, agentBoxKey, masterBox.secretKey) };
}

export function openCredentials(
  sealed: { nonce: Uint8Array; box: Uint8Array },
  masterBoxKey: Uint8Array,
  agentBox: nacl.BoxKeyPair,
): RsyncCredentials | null {
  const plain = nacl.box.open(sealed.box, sealed.nonce, masterBoxKey, agentBox.secretKey);
  if (plain === null) return null;
  try {
    const v = JSON.parse(new TextDecoder().decode(plain)) as unknown;
    if (typeof v === 'object' && v !== null && typeof (v as RsyncCredentials).user === 'string' && typeof (v as RsyncCredentials).password === 'string') {
      return { user: (v as RsyncCredentials).user, password: (v as RsyncCredentials).password };
    }
  } catch {
    // fall through: undecodable credentials are treated like missing ones
  }
  return null;
}

/** WebSocket close codes, so the peer's log can say why. */
export const CLOSE = {
  /** the WebSocket standard's "message too big": a frame over the receiver's bound */
  tooBig: 1009,
  protocol: 4400,
  unauthorized: 4401,
  timeout: 4408,
  replaced: 4409,
  /** an authenticated peer sent more than its frame budget (`AGENT_FRAME_RATE`) */
  tooMany: 4429,
  shutdown: 4503,
} as const;

export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE];
