// The on-disk and on-the-wire forms of ed25519 keys.
// A secret key file holds the 32-byte seed in base64 after a comment line;
// a public key is 32 bytes in standard base64.

const HEADER = '# inosync ed25519 secret key (keep it 0600; share only the public key)';

export class KeyFormatError extends Error {}

export function formatSecretKeyFile(seed: Uint8Array): string {
  if (seed.length !== 32) throw new KeyFormatError('an ed25519 seed is 32 bytes');
  return `${HEADER}\n${Buffer.from(seed).toString('base64')}\n`;
}

const B64_RE = /^[A-Za-z0-9+/]+={0,2}$/;

function decodeB64(text: string): Buffer | null {
  if (!B64_RE.test(text) || text.length % 4 !== 0) return null;
  return Buffer.from(text, 'base64');
}

/** Seed from a key file's text. Accepts tweetnacl's 64-byte secret keys too (seed || public). */
export function parseSecretKeyFile(text: string): Uint8Array {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length !== 1) throw new KeyFormatError('expected exactly one base64 line (create one with: inosync keygen FILE)');
  const raw = decodeB64(lines[0]!);
  if (raw === null) throw new KeyFormatError('the key line is not valid base64');
  if (raw.length === 32 || raw.length === 64) return new Uint8Array(raw.subarray(0, 32));
  throw new KeyFormatError(`the key decodes to ${raw.length} bytes, expected 32`);
}

/** Why `text` is not a base64 ed25519 public key, or null if it is one. */
export function publicKeyProblem(text: unknown): string | null {
  if (typeof text !== 'string') return 'not a string';
  const raw = decodeB64(text.trim());
  if (raw === null) return 'not valid base64';
  if (raw.length !== 32) return `decodes to ${raw.length} bytes, expected 32`;
  return null;
}

export function parsePublicKey(text: string): Uint8Array {
  const problem = publicKeyProblem(text);
  if (problem !== null) throw new KeyFormatError(`public key ${problem}`);
  return new Uint8Array(Buffer.from(text.trim(), 'base64'));
}

export function formatPublicKey(pub: Uint8Array): string {
  return Buffer.from(pub).toString('base64');
}
