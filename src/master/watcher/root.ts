// The watched root as backends see it, and the mapping from the absolute paths
// they report back to root-relative ones.

import { realpath, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';

export interface Root {
  /** as configured; the guard re-checks this path, symlinks and all */
  configured: string;
  /** symlink-free, so that backend paths can be cut by prefix */
  real: string;
  dev: number;
  ino: number;
}

export async function resolveRoot(configured: string): Promise<Root> {
  if (!isAbsolute(configured)) {
    throw new Error(`watch root "${configured}" is not an absolute path; configure the directory as an absolute path`);
  }
  let real: string;
  try {
    real = await realpath(configured);
  } catch (err) {
    throw new Error(`cannot watch ${configured}: ${(err as Error).message}; check that the directory exists and is readable`);
  }
  const st = await stat(real);
  if (!st.isDirectory()) {
    throw new Error(`cannot watch ${configured}: it is not a directory; configure a directory`);
  }
  return { configured, real, dev: st.dev, ino: st.ino };
}

/**
 * Returns a function mapping an absolute path to its root-relative form:
 * '' for the root itself, null for anything outside it.
 */
export function relativizer(rootReal: string): (abs: string) => string | null {
  const prefix = rootReal.endsWith('/') ? rootReal : rootReal + '/';
  return (abs) => {
    if (abs === rootReal) return '';
    if (!abs.startsWith(prefix)) return null;
    const rel = abs.slice(prefix.length);
    return rel === '' ? null : rel;
  };
}

export function absoluteOf(rootReal: string, rel: string): string {
  return rootReal.endsWith('/') ? rootReal + rel : rootReal + '/' + rel;
}
