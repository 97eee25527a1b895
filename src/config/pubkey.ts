// Public keys appear in configs as base64 of the 32 raw bytes of an ed25519
// key. keys-format.ts owns the key files; this only vets the config strings.

export const PUBLIC_KEY_BYTES = 32;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Why `s` is not a base64 32-byte public key, or null if it is one. */
export function publicKeyProblem(s: string): string | null {
  if (/\s/.test(s)) return 'contains whitespace; paste the key as one unbroken base64 string';
  if (s.includes('-') || s.includes('_')) {
    return 'uses the URL-safe base64 alphabet ("-" or "_"); write the key in standard base64 ("+" and "/")';
  }
  if (!BASE64.test(s) || s.length % 4 !== 0) {
    return 'is not valid base64; copy the public key again exactly as printed by the other side';
  }
  const bytes = Buffer.from(s, 'base64');
  if (bytes.length !== PUBLIC_KEY_BYTES) {
    return `decodes to ${bytes.length} bytes, but a public key has ${PUBLIC_KEY_BYTES}; `
      + 'check that this is the public key (not the secret key) and that it was copied whole';
  }
  // Non-zero padding bits would let two spellings name the same key, which
  // would defeat the duplicate-key check.
  if (bytes.toString('base64') !== s) {
    return 'is not canonical base64 (its last character carries stray bits); copy the key again';
  }
  return null;
}

export function isPublicKeyB64(s: unknown): s is string {
  return typeof s === 'string' && publicKeyProblem(s) === null;
}
