// Snapshots of a directory tree, and comparison of two of them with a message
// that shows where they differ: the yardstick for "the mirror equals the origin".
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { AssertionError } from 'node:assert';
import { join } from 'node:path';

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'char' | 'block';

export interface Entry {
  type: EntryType;
  /** permission bits, setuid/setgid/sticky included */
  mode: number;
  uid: number;
  gid: number;
  /** bytes; 0 for a directory, whose size depends on the filesystem and its history */
  size: number;
  /** nanoseconds since the epoch (lstat: a symlink's own) */
  mtimeNs: bigint;
  /** a regular file's content */
  sha256?: string;
  /** a symlink's target */
  target?: string;
  /** a device's number */
  rdev?: number;
}

export type Field = keyof Entry;

/** The root directory's own entry. */
export const ROOT = '.';

/**
 * Every entry under `dir`, keyed by its path relative to `dir` ('/'
 * separators; the root itself is '.'), in sorted order. Symlinks are not
 * followed.
 */
export async function snapshotTree(dir: string): Promise<Map<string, Entry>> {
  const found: Array<[string, Entry]> = [[ROOT, await entryOf(dir, await lstat(dir, { bigint: true }))]];
  const pending: Array<[string, string]> = [[dir, '']];
  while (pending.length > 0) {
    const [abs, rel] = pending.pop()!;
    for (const name of await readdir(abs)) {
      const childAbs = join(abs, name);
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(childAbs, { bigint: true });
      found.push([childRel, await entryOf(childAbs, st)]);
      if (st.isDirectory()) pending.push([childAbs, childRel]);
    }
  }
  found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return new Map(found);
}

async function entryOf(abs: string, st: BigIntStats): Promise<Entry> {
  const type = typeOf(st);
  const e: Entry = {
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: type === 'dir' ? 0 : Number(st.size),
    mtimeNs: st.mtimeNs,
  };
  if (type === 'file') e.sha256 = await hashFile(abs);
  if (type === 'symlink') e.target = await readlink(abs);
  if (type === 'char' || type === 'block') e.rdev = Number(st.rdev);
  return e;
}

function typeOf(st: BigIntStats): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'char';
  return 'block';
}

function hashFile(abs: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(abs)
      .on('data', (chunk) => h.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export interface CompareOptions {
  /**
   * Paths left out, each with everything below it: a list of paths, or a
   * predicate (a path is left out when it or any of its ancestors matches).
   * The root ('.') is always compared; `skip` can drop its fields.
   */
  ignore?: Iterable<string> | ((rel: string) => boolean);
  /** Fields not compared: for every entry, or per path. */
  skip?: readonly Field[] | ((rel: string) => readonly Field[] | undefined);
  /** Names of the two trees in messages. */
  names?: [string, string];
  /** Differences listed in an assertion message (default 10). */
  max?: number;
}

const FIELDS: readonly Field[] = ['type', 'mode', 'uid', 'gid', 'size', 'mtimeNs', 'sha256', 'target', 'rdev'];

/** Every difference between two snapshots, one line each, in path order. */
export function diffTrees(a: Map<string, Entry>, b: Map<string, Entry>, opts: CompareOptions = {}): string[] {
  const [nameA, nameB] = opts.names ?? ['actual', 'expected'];
  const ignored = ignorePredicate(opts.ignore);
  const skipped = (rel: string): readonly Field[] =>
    typeof opts.skip === 'function' ? (opts.skip(rel) ?? []) : (opts.skip ?? []);
  const paths = [...new Set([...a.keys(), ...b.keys()])].sort();
  const out: string[] = [];
  for (const rel of paths) {
    if (rel !== ROOT && ignored(rel)) continue;
    const ea = a.get(rel);
    const eb = b.get(rel);
    const shown = JSON.stringify(rel);
    if (!ea) {
      out.push(`${shown}: only in ${nameB} (${describe(eb!)})`);
      continue;
    }
    if (!eb) {
      out.push(`${shown}: only in ${nameA} (${describe(ea)})`);
      continue;
    }
    const skip = skipped(rel);
    const diffs: string[] = [];
    for (const f of FIELDS) {
      if (skip.includes(f)) continue;
      if (ea[f] !== eb[f]) diffs.push(`${f} ${show(f, ea[f])} vs ${show(f, eb[f])}`);
    }
    if (diffs.length > 0) out.push(`${shown}: ${diffs.join(', ')} (${nameA} vs ${nameB})`);
  }
  return out;
}

/** Throws an AssertionError listing the first differences, if there are any. */
export function assertTreesEqual(actual: Map<string, Entry>, expected: Map<string, Entry>, opts: CompareOptions = {}): void {
  const diffs = diffTrees(actual, expected, opts);
  if (diffs.length === 0) return;
  const max = opts.max ?? 10;
  const lines = diffs.slice(0, max).map((d) => `  ${d}`);
  if (diffs.length > max) lines.push(`  ... and ${diffs.length - max} more`);
  const [nameA, nameB] = opts.names ?? ['actual', 'expected'];
  throw new AssertionError({
    message: `trees differ in ${diffs.length} place${diffs.length === 1 ? '' : 's'} (${nameA} vs ${nameB}):\n${lines.join('\n')}`,
  });
}

function ignorePredicate(ignore: CompareOptions['ignore']): (rel: string) => boolean {
  if (!ignore) return () => false;
  const direct = typeof ignore === 'function' ? ignore : ((set) => (rel: string) => set.has(rel))(new Set(ignore));
  return (rel) => {
    if (direct(rel)) return true;
    for (let i = rel.indexOf('/'); i >= 0; i = rel.indexOf('/', i + 1)) if (direct(rel.slice(0, i))) return true;
    return false;
  };
}

function describe(e: Entry): string {
  if (e.type === 'file') return `file, ${e.size} bytes`;
  if (e.type === 'symlink') return `symlink -> ${JSON.stringify(e.target)}`;
  return e.type;
}

function show(f: Field, v: Entry[Field]): string {
  if (v === undefined) return '-';
  if (f === 'mode') return '0' + (v as number).toString(8).padStart(3, '0');
  if (f === 'mtimeNs') return formatNs(v as bigint);
  if (f === 'sha256') return (v as string).slice(0, 12);
  return JSON.stringify(typeof v === 'bigint' ? String(v) : v);
}

function formatNs(ns: bigint): string {
  const s = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${new Date(Number(s) * 1000).toISOString().slice(0, 19)}.${frac}Z`;
}

/** Every regular file's content under `dir`, concatenated (symlinks not followed): what a pull let through. */
export function readAllFiles(dir: string): string {
  let out = '';
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out += readAllFiles(p);
    else if (e.isFile()) out += readFileSync(p, 'utf8');
  }
  return out;
}
