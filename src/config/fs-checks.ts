// Checks of what a config points at on this machine. They can only be
// trusted where the daemon will run, which is why callers may downgrade them
// to warnings (checking an example written for another machine).

import * as fs from 'node:fs';
import * as path from 'node:path';

type Stat = { stat: fs.Stats } | { problem: string };

function statOf(p: string): Stat {
  try {
    return { stat: fs.statSync(p) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { problem: `${p} does not exist; create it or correct the path` };
    if (code === 'EACCES') return { problem: `${p} cannot be checked: permission denied; run as the user the daemon runs as` };
    if (code === 'ENOTDIR') return { problem: `a parent of ${p} is not a directory; correct the path` };
    return { problem: `${p} cannot be checked: ${(err as Error).message}` };
  }
}

/**
 * A secret key must be a regular file nobody but its owner can read or
 * change. Symlinks are refused because common/keyfile.ts opens keys with
 * O_NOFOLLOW.
 */
export function secretKeyFileProblem(file: string): string | null {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `${file} does not exist; create it with: inosync keygen ${file}`;
    const s = statOf(file);
    return 'problem' in s ? s.problem : `${file} cannot be checked: ${(err as Error).message}`;
  }
  if (st.isSymbolicLink()) return `${file} is a symlink, which the daemon refuses to open; point the config at the real file`;
  if (!st.isFile()) return `${file} is not a regular file; point this at the secret key file`;
  if ((st.mode & 0o077) !== 0) {
    return `${file} is accessible by group or others (mode ${modeOf(st)}), which exposes the secret key; run: chmod 600 ${file}`;
  }
  return null;
}

/**
 * The TLS private key gets the ed25519 keys' rule for others: no access at
 * all. It may be a symlink (certbot's live/ directory is made of them), and
 * access for its group is only a warning (see tlsKeyGroupProblem).
 */
export function tlsKeyFileProblem(file: string): string | null {
  const s = statOf(file);
  if ('problem' in s) return s.problem;
  if (!s.stat.isFile()) return `${file} is not a regular file; point this at the PEM private key`;
  if ((s.stat.mode & 0o007) !== 0) {
    return `${file} is accessible by others (mode ${modeOf(s.stat)}), which exposes the TLS private key; run: chmod 600 ${file}`;
  }
  return null;
}

/**
 * Group access to the TLS key is a common convention (Debian's ssl-cert group
 * lets several daemons share one certificate), so it warns rather than stops
 * the master, which runs as root and needs no group to read it.
 */
export function tlsKeyGroupProblem(file: string): string | null {
  const s = statOf(file);
  if ('problem' in s || !s.stat.isFile() || (s.stat.mode & 0o077) === 0 || (s.stat.mode & 0o007) !== 0) return null;
  return `${file} is accessible by its group (gid ${s.stat.gid}, mode ${modeOf(s.stat)}), which shares the TLS private key `
    + `with every member; unless another daemon needs it, run: chmod 600 ${file}`;
}

function modeOf(st: fs.Stats): string {
  return (st.mode & 0o777).toString(8).padStart(3, '0');
}

export function regularFileProblem(file: string): string | null {
  const s = statOf(file);
  if ('problem' in s) return s.problem;
  return s.stat.isFile() ? null : `${file} is not a regular file; correct the path`;
}

/** `writable` for a directory rsync writes into, not just reads from. */
export function directoryProblem(dir: string, writable = false): string | null {
  const s = statOf(dir);
  if ('problem' in s) return s.problem;
  if (!s.stat.isDirectory()) return `${dir} is a file, not a directory; point this at a directory`;
  const { R_OK, W_OK, X_OK } = fs.constants;
  try {
    fs.accessSync(dir, writable ? R_OK | W_OK | X_OK : R_OK | X_OK);
  } catch {
    const what = writable ? 'written' : 'read';
    return `${dir} cannot be ${what} by this user; fix its permissions or run as a user that can`;
  }
  return null;
}

/** The agent creates its state directory, but only inside a parent that exists. */
export function stateDirProblem(dir: string): string | null {
  try {
    if (fs.statSync(dir).isDirectory()) return stateDirSafetyProblem(dir);
    return `${dir} exists but is not a directory; remove it or choose another state directory`;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      const s = statOf(dir);
      return 'problem' in s ? s.problem : null;
    }
  }
  const parent = path.dirname(dir);
  const s = statOf(parent);
  if ('problem' in s || !s.stat.isDirectory()) {
    return `neither ${dir} nor its parent ${parent} exists as a directory; run: mkdir -p ${dir}`;
  }
  return null;
}

/** A binary given by name is looked up in PATH, the way rsync would be spawned. */
export function binaryProblem(binary: string, searchPath = process.env['PATH'] ?? ''): string | null {
  if (binary.includes('/')) return executableProblem(binary);
  for (const dir of searchPath.split(path.delimiter)) {
    if (dir !== '' && executableProblem(path.join(dir, binary)) === null) return null;
  }
  return `"${binary}" was not found in PATH; install rsync or set the binary to its absolute path`;
}

function executableProblem(file: string): string | null {
  const s = statOf(file);
  if ('problem' in s) return s.problem;
  if (!s.stat.isFile()) return `${file} is not a regular file; point this at the rsync executable`;
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    return `${file} is not executable by this user; run: chmod +x ${file}`;
  }
  return null;
}

/**
 * The agent (often root) writes its state file there: a directory another
 * user owns or may write into lets that user plant a link the agent then
 * writes through, or swap the file itself. Null when it is safe or absent.
 */
export function stateDirSafetyProblem(dir: string, uid: number | undefined = process.geteuid?.()): string | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return null;
  }
  if (!st.isDirectory()) return null;
  if (uid !== undefined && st.uid !== uid) {
    return `${dir} is owned by uid ${st.uid}, not by the agent's user (uid ${uid}): its owner could plant files the agent writes through; run: chown ${uid} ${dir} && chmod 700 ${dir}`;
  }
  if ((st.mode & 0o022) !== 0) {
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    return `${dir} is writable by ${(st.mode & 0o002) !== 0 ? 'any user' : 'its group'} (mode ${mode}): another user could plant files the agent writes through; run: chmod 700 ${dir}`;
  }
  return null;
}
