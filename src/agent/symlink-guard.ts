// Keeps a batch from writing through a symlink that sits on the mirror where
// the origin has a directory (placed there by hand, by another program, or by
// someone who got write access to the mirror: `target/evil -> /etc`).
//
// What rsync 3.2.7 does on its own, measured (test/security-agent.test.ts):
// without --keep-dirlinks (-K) the receiver never descends into a symlink; a
// directory from the sender replaces it, so `evil/passwd` lands in a new real
// directory. With -K it follows the link and writes /etc/passwd. The config
// refuses -K (config/rsync-extra.ts), so this guard is the second line: it
// does not depend on rsync's flags or version, and it makes the tampering
// visible instead of silently repairing it.
//
// A listed entry whose ancestor on the mirror is a symlink resolving outside
// the target (or not resolving at all) is taken out of the run and reported.
// A symlink resolving inside the target does not end the check: the ancestors
// below it are looked at through it, so a chain (`a -> b`, then `b/c -> /etc`,
// listed as `a/c/x`) is caught at `a/c`. Only when every ancestor resolves
// inside is the entry left to rsync. Only the ancestors of listed entries are checked:
// below a `tree` entry and in a full sync, rsync's own no-follow rule (with -K
// refused) is what holds, and a full sync replaces such a link.
import { lstatSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import type { PathChanges } from '../protocol/changes.js';
import { ancestorsOf, isWithin } from '../protocol/relpath.js';

export type AncestorKind = 'dir' | 'symlink-inside' | 'symlink-outside' | 'other' | 'missing';

export interface RefusedEntry {
  /** the listed entry that was not synced */
  entry: string;
  /** its ancestor that is a symlink leading out of the target */
  link: string;
}

export interface GuardOutcome {
  /** what may be given to rsync; the input itself when nothing was refused */
  safe: PathChanges;
  refused: RefusedEntry[];
}

/**
 * Pure: splits `changes` given a way to classify an ancestor path (relative
 * to the target). Ancestors are asked outermost first and once each; below
 * one that is not a directory nothing further is asked.
 */
export function splitChanges(changes: PathChanges, classify: (rel: string) => AncestorKind): GuardOutcome {
  if (changes.full) return { safe: changes, refused: [] };
  const memo = new Map<string, AncestorKind>();
  const kindOf = (rel: string): AncestorKind => {
    let k = memo.get(rel);
    if (k === undefined) memo.set(rel, (k = classify(rel)));
    return k;
  };
  const escapeOf = (entry: string): string | null => {
    for (const a of ancestorsOf(entry)) {
      const k = kindOf(a);
      if (k === 'symlink-outside') return a;
      // Through a link that stays inside, what lies below still has to be looked at.
      if (k === 'symlink-inside') continue;
      if (k !== 'dir') return null;
    }
    return null;
  };
  const refused: RefusedEntry[] = [];
  const keep = (list: string[]): string[] =>
    list.filter((entry) => {
      const link = escapeOf(entry);
      if (link === null) return true;
      refused.push({ entry, link });
      return false;
    });
  const safe: PathChanges = { name: changes.name, full: false, files: keep(changes.files), dirs: keep(changes.dirs), trees: keep(changes.trees) };
  return refused.length === 0 ? { safe: changes, refused } : { safe, refused };
}

/** Thin: classifies ancestors with lstat/realpath under `target`. */
export function guardChanges(target: string, changes: PathChanges): GuardOutcome {
  if (changes.full) return { safe: changes, refused: [] };
  let root: string | null = null;
  return splitChanges(changes, (rel) => {
    const abs = join(target, rel);
    let st;
    try {
      st = lstatSync(abs);
    } catch {
      return 'missing';
    }
    if (st.isDirectory()) return 'dir';
    if (!st.isSymbolicLink()) return 'other';
    try {
      root ??= realpathSync(target);
      const real = realpathSync(abs);
      return isWithin(real, root) ? 'symlink-inside' : 'symlink-outside';
    } catch {
      // Dangling or looping: nothing shows it stays inside, and what it names may appear later.
      return 'symlink-outside';
    }
  });
}

export function isEmptyChanges(c: PathChanges): boolean {
  return !c.full && c.files.length === 0 && c.dirs.length === 0 && c.trees.length === 0;
}

/** For the run report and the log: a few refused entries and the links behind them. */
export function describeRefused(refused: readonly RefusedEntry[]): string {
  const links = [...new Set(refused.map((r) => r.link))];
  const shown = refused.slice(0, 3).map((r) => JSON.stringify(r.entry)).join(', ');
  return (
    `not syncing ${refused.length} entr${refused.length === 1 ? 'y' : 'ies'} (${shown}${refused.length > 3 ? ', ...' : ''}): ` +
    `${links.slice(0, 3).map((l) => JSON.stringify(l)).join(', ')} ${links.length === 1 ? 'is a symlink' : 'are symlinks'} on this mirror ` +
    'leading outside the target where the origin has a directory; remove it from the mirror (a full sync replaces it)'
  );
}
