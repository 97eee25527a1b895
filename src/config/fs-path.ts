// File paths in a config. Relative ones are resolved against the directory of
// the config file, not the process's working directory: a daemon started by
// systemd runs in "/", so the config's own location is the only anchor an
// operator can rely on, and a directory holding a config with its keys can be
// moved as a whole. The config path itself is not resolved through symlinks.

import * as path from 'node:path';
import { bad, ok, type Checked } from './checked.js';

export function resolveConfigPath(dir: string, p: string): Checked<string> {
  if (p.includes('\0')) return bad('contains a NUL character; remove it');
  if (p === '~' || p.startsWith('~/')) {
    return bad(`"${p}": "~" is only expanded by a shell; write the absolute path`);
  }
  // path.resolve also drops a trailing slash and "." / ".." segments, but keeps "/" itself.
  return ok(path.resolve(dir, p));
}

/** The rsync binary: a bare name is looked up in PATH; anything with a "/" is a path. */
export function resolveBinary(dir: string, p: string): Checked<string> {
  if (!p.includes('/')) return p.includes('\0') ? bad('contains a NUL character; remove it') : ok(p);
  return resolveConfigPath(dir, p);
}

/** True when `inner` is `outer` or lies below it (both absolute and normalised). */
export function isPathWithin(inner: string, outer: string): boolean {
  if (inner === outer || outer === '/') return true;
  return inner.startsWith(outer) && inner.charAt(outer.length) === '/';
}
