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

/** Why `s` is not a base64 32-byte public key, or null if it is one. */
export function publicKeyProblem(s: unknown): string | null {
  if (typeof s !== 'string') return 'is not a string';
  if (/\s/.test(s)) return 'contains whitespace; paste the key as one unbroken base64 string';
  if (s.includes('-') || s.includes('_')) {
    return 'uses the URL-safe base64 alphabet ("-" or "_"); write the key in standard base64 ("+" and "/")';
  }
  if (!B64_RE.test(s) || s.length % 4 !== 0) {
    return 'is not valid base64; copy the public key again exactly as printed by the other side';
  }
  const bytes = Buffer.from(s, 'base64');
  if (bytes.length !== 32) {
    return `decodes to ${bytes.length} bytes, but a public key has 32; check that this is the public key (not the secret key) and that it was copied whole`;
  }
  // Non-zero padding bits would let two spellings name the same key, which
  // would defeat the duplicate-key check.
  if (bytes.toString('base64') !== s) return 'is not canonical base64 (its last character carries stray bits); copy the key again';
  return null;
}

export function isPublicKeyB64(s: unknown): s is string {
  return publicKeyProblem(s) === null;
}

export function parsePublicKey(text: string): Uint8Array {
  const problem = publicKeyProblem(text);
  if (problem !== null) throw new KeyFormatError(`public key ${problem}`);
  return new Uint8Array(Buffer.from(text, 'base64'));
}

export function formatPublicKey(pub: Uint8Array): string {
  return Buffer.from(pub).toString('base64');
}
