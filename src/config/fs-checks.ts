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

/** A secret key must be a regular file nobody but its owner can read or change. */
export function secretKeyFileProblem(file: string): string | null {
  const s = statOf(file);
  if ('problem' in s) return s.problem;
  if (!s.stat.isFile()) return `${file} is not a regular file; point this at the secret key file`;
  const loose = s.stat.mode & 0o077;
  if (loose !== 0) {
    const mode = (s.stat.mode & 0o777).toString(8).padStart(3, '0');
    return `${file} is accessible by group or others (mode ${mode}), which exposes the secret key; run: chmod 600 ${file}`;
  }
  return null;
}

export function regularFileProblem(file: string): string | null {
  const s = statOf(file);
  if ('problem' in s) return s.problem;
  return s.stat.isFile() ? null : `${file} is not a regular file; correct the path`;
}

export function directoryProblem(dir: string): string | null {
  const s = statOf(dir);
  if ('problem' in s) return s.problem;
  if (!s.stat.isDirectory()) return `${dir} is a file, not a directory; point this at a directory`;
  try {
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.X_OK);
  } catch {
    return `${dir} cannot be read by this user; fix its permissions or run as a user that can read it`;
  }
  return null;
}

/** The agent creates its state directory, but only inside a parent that exists. */
export function stateDirProblem(dir: string): string | null {
  try {
    if (fs.statSync(dir).isDirectory()) return null;
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
