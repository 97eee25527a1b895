// Reading and writing secret key files with the permissions a key deserves.
import { closeSync, fstatSync, openSync, readFileSync, writeSync, constants } from 'node:fs';
import nacl from 'tweetnacl';
import { formatPublicKey, formatSecretKeyFile, KeyFormatError, parseSecretKeyFile } from '../protocol/keys.js';
import { signerFromSeed, type Signer } from '../protocol/sign.js';

export class KeyFileError extends Error {}

/** Loads a secret key, refusing one that group or others can read. */
export function loadSecretKey(file: string): Signer {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new KeyFileError(`key file ${file} does not exist; create it with: inosync keygen ${file}`);
    if (code === 'ELOOP') throw new KeyFileError(`key file ${file} is a symlink; point the config at the real file`);
    throw new KeyFileError(`cannot open key file ${file}: ${(err as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new KeyFileError(`key file ${file} is not a regular file`);
    if ((st.mode & 0o077) !== 0) {
      throw new KeyFileError(
        `key file ${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); run: chmod 600 ${file}`,
      );
    }
    if (st.size > 4096) throw new KeyFileError(`key file ${file} is ${st.size} bytes; a key file is a few dozen bytes`);
    const text = readFileSync(fd, 'utf8');
    try {
      return signerFromSeed(parseSecretKeyFile(text));
    } catch (err) {
      if (err instanceof KeyFormatError) throw new KeyFileError(`key file ${file}: ${err.message}`);
      throw err;
    }
  } finally {
    closeSync(fd);
  }
}

/** Creates a new key file (mode 0600, never overwriting) and returns the base64 public key. */
export function generateKeyFile(file: string): string {
  const seed = nacl.randomBytes(32);
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new KeyFileError(`${file} already exists; refusing to overwrite a key (remove it first if you mean to replace it)`);
    throw new KeyFileError(`cannot create key file ${file}: ${(err as Error).message}`);
  }
  try {
    writeSync(fd, formatSecretKeyFile(seed));
  } finally {
    closeSync(fd);
  }
  return formatPublicKey(signerFromSeed(seed).publicKey);
}
