// One batch of changes as one rsync run: the agent pulls from the master's
// rsync daemon into its target. lsyncd's technique: every changed path and
// its ancestors are included by name through an include list on stdin, and a
// final catch-all exclude keeps rsync away from everything else, on both
// sides: unlisted source entries are not sent, unlisted mirror entries are not
// deleted, and a listed path missing from the source is deleted (--delete).
//
// The rules, all anchored at the module root and matched by rsync 3.2.7 as
// verified in test/rsync-filter.test.ts:
// - every listed path and every ancestor, as `/a/b`: no trailing slash, so
//   the rule matches whatever type the path has now. A path that became a
//   symlink or a file is then mirrored too, where `/a/b/` (directories only)
//   would leave the mirror's directory in its place or delete it outright.
// - a `tree` adds `/a/b/***`: its contents at any depth. `/a/b/***` alone does
//   not match a non-directory `a/b` (measured), hence the rule above.
// - a `dir` and a `file` need nothing more: the directory's attributes, or
//   the one entry.
// - the directory of each `file` entry adds `/dir/.*.??????`, which is the
//   shape of rsync's temporary files (`.name.XXXXXX`). rsync removes its
//   temporary file on SIGTERM, SIGINT, SIGHUP and its own timeouts, but one
//   killed outright (SIGKILL, OOM, power loss) leaves it in the target, where
//   the catch-all shields it from every incremental run. Including the shape
//   makes the next run of that directory delete it; at worst it also syncs a
//   real source entry of that shape, which a full sync would do anyway. Under
//   a `tree` the `***` rule already covers them, and a full sync deletes
//   them like any other entry the origin lacks.
//
// The catch-all is `-p *` rather than `--exclude=*`: a perishable rule is
// ignored inside a directory that rsync is deleting. With a plain exclude, a
// directory that vanished from the source keeps everything the batch did not
// list, and rsync reports "cannot delete non-empty directory" yet exits 0; the
// mirror silently keeps a directory the origin no longer has. Configured
// excludes stay non-perishable: what they name is protected everywhere.
import type { PathChanges } from '../protocol/changes.js';
import { ancestorsOf, parentOf, relPathProblem } from '../protocol/relpath.js';

/**
 * The longest rule rsync 3.2.7 reads from an include file (4095 bytes,
 * measured). It discards a longer one with a message and still exits 0, so a
 * path whose rules would not fit is synced as a tree of its deepest ancestor
 * whose rules do.
 */
export const MAX_RULE_BYTES = 4095;

/** File-only runs listing more files than this skip --ignore-times (see buildRsyncArgs). */
export const MAX_IGNORE_TIMES_FILES = 256;

/** rsync's temporary files: `.` + name (maybe truncated) + `.` + 6 random characters. */
const TEMP_FILES = '.*.??????';

// rsync treats a rule as a wildcard pattern, where backslash escapes, only
// when it contains one of `*?[`; otherwise it compares the rule literally and
// a backslash is just a backslash. So a name is escaped only in a rule that
// needs wildcards anyway (`***`, the temp-file shape) or that the name itself
// would turn into one, and then backslashes are escaped too.
const WILDCARDS = /[*?[]/;
const ESCAPED = /[\\*?[]/g;

function escaped(rel: string): string {
  return rel.replace(ESCAPED, '\\$&');
}

function nameRule(rel: string): string {
  return '/' + (WILDCARDS.test(rel) ? escaped(rel) : rel);
}

function subtreeRule(rel: string): string {
  return `/${escaped(rel)}/***`;
}

function tempFilesRule(dir: string): string {
  return dir === '' ? `/${TEMP_FILES}` : `/${escaped(dir)}/${TEMP_FILES}`;
}

const fits = (rule: string): boolean => Buffer.byteLength(rule) <= MAX_RULE_BYTES;

interface IncludePlan {
  /** sorted, distinct */
  rules: string[];
  /** tree entries actually used (long paths may widen into trees) */
  trees: number;
  /** directories listed as `/dir/*` instead of entry by entry */
  crowded: number;
}

/**
 * An incremental run with more rules than this lists its crowded directories
 * as `/dir/*` (every entry, one level) instead of entry by entry. rsync tries
 * every rule in turn against every entry it meets, on both sides, so a batch
 * of 2,000 deletions spread over 100 directories cost more CPU in rule
 * matching (0.3 s per side, measured with rsync -n) than the whole transfer.
 * `/dir/*` makes the run compare that directory's unlisted entries too, by
 * the quick check, which is what a full sync would do there anyway.
 */
export const MAX_NAMED_RULES = 512;

/** Directories with at least this many listed entries are collapsed first, then smaller ones. */
const CROWD_STEPS = [8, 2];

function planIncludes(changes: PathChanges): IncludePlan {
  if (changes.full) throw new Error('a full sync has no include list');
  /** file and dir entries: the entry itself, whatever its type */
  const entries = new Set<string>();
  const trees = new Set<string>();
  const tempDirs = new Set<string>();

  const asTree = (rel: string): void => {
    if (fits(subtreeRule(rel))) {
      trees.add(rel);
      return;
    }
    // Widen to the deepest ancestor that fits. A top-level name always does:
    // at most 255 bytes, 510 escaped.
    const ancestors = ancestorsOf(rel);
    for (let i = ancestors.length - 1; i >= 0; i--) {
      const a = ancestors[i]!;
      if (fits(subtreeRule(a))) {
        trees.add(a);
        return;
      }
    }
    throw new Error(`no rsync rule can hold ${JSON.stringify(rel)}`);
  };

  for (const rel of changes.trees) asTree(checked(rel));
  for (const rel of changes.dirs) {
    if (fits(nameRule(checked(rel)))) entries.add(rel);
    else asTree(rel);
  }
  for (const rel of changes.files) {
    const dir = parentOf(checked(rel));
    if (fits(nameRule(rel)) && fits(tempFilesRule(dir))) {
      entries.add(rel);
      tempDirs.add(dir);
    } else asTree(rel);
  }

  const crowded = new Set<string>();
  let rules = buildRules(entries, trees, tempDirs, crowded);
  for (const min of CROWD_STEPS) {
    if (rules.size <= MAX_NAMED_RULES) break;
    const byDir = new Map<string, number>();
    for (const rel of entries) {
      const dir = parentOf(rel);
      byDir.set(dir, (byDir.get(dir) ?? 0) + 1);
    }
    for (const [dir, n] of byDir) {
      if (n < min || !fits(crowdRule(dir))) continue;
      crowded.add(dir);
      tempDirs.delete(dir); // `*` matches rsync's temporary files too
    }
    for (const rel of entries) if (crowded.has(parentOf(rel))) entries.delete(rel);
    rules = buildRules(entries, trees, tempDirs, crowded);
  }
  return { rules: [...rules].sort(), trees: trees.size, crowded: crowded.size };
}

function crowdRule(dir: string): string {
  return dir === '' ? '/*' : `/${escaped(dir)}/*`;
}

function buildRules(entries: Set<string>, trees: Set<string>, tempDirs: Set<string>, crowded: Set<string>): Set<string> {
  const rules = new Set<string>();
  const named = (rel: string): void => {
    rules.add(nameRule(rel));
    for (const a of ancestorsOf(rel)) rules.add(nameRule(a));
  };
  for (const rel of entries) named(rel);
  for (const rel of trees) {
    named(rel);
    rules.add(subtreeRule(rel));
  }
  for (const dir of crowded) {
    if (dir !== '') named(dir);
    rules.add(crowdRule(dir));
  }
  for (const dir of tempDirs) rules.add(tempFilesRule(dir));
  return rules;
}

function checked(rel: string): string {
  const problem = relPathProblem(rel);
  if (problem) throw new TypeError(`bad relative path ${JSON.stringify(rel)}: ${problem}`);
  return rel;
}

/** The include rules for an incremental run, each terminated by NUL (for --from0), sorted. */
export function includeList(changes: PathChanges): Buffer {
  return encodeRules(planIncludes(changes).rules);
}

function encodeRules(rules: string[]): Buffer {
  return Buffer.from(rules.map((r) => r + '\0').join(''), 'utf8');
}

export interface RsyncRunSpec {
  /** the rsync program; the caller spawns it with `args` */
  binary: string;
  /** rsync://host:port/MODULE/ */
  url: string;
  /** overrides `url`: an rsync:// URL or an absolute local directory ending in '/' (tests) */
  source?: string;
  /** absolute directory */
  target: string;
  /** configured rsync exclude patterns */
  excludes: string[];
  changes: PathChanges;
  /** KiB/s, 0 = no limit */
  bwlimit: number;
  /** seconds of I/O silence before rsync gives up, 0 = never */
  timeout: number;
  /** raw extra arguments from the config, placed after ours so they can override */
  extra: string[];
  /** refuse to delete more than this many entries, 0 = no limit */
  maxDelete: number;
  /** whether rsync runs as root: only root can give files their owner and any group */
  isRoot: boolean;
  /** rsync's own -n */
  dryRun?: boolean;
  /** what this path takes from the origin beyond ordinary files; nothing by default */
  optIns?: Partial<MirrorOptIns>;
}

/**
 * What a mirror refuses from the origin unless its path opts back in. rsync
 * running as root would otherwise create whatever the origin holds, so a
 * compromised master, or a man in the middle on plain rsync, could plant a
 * setuid-root binary or a world-writable block device on every mirror.
 */
export interface MirrorOptIns {
  /** block and character devices (creating them needs root and CAP_MKNOD) */
  devices: boolean;
  /** FIFOs and sockets */
  specials: boolean;
  /** setuid and setgid bits, on files and directories, and file capabilities (with -X) */
  setuid: boolean;
}

// host[:port] without '/', then a module name, then the slash that makes
// rsync copy the module's contents rather than the module directory.
const DAEMON_URL = /^rsync:\/\/[^/\s]+\/[^/\0]+\/$/;

export function buildRsyncArgs(spec: RsyncRunSpec): { args: string[]; stdin: Buffer | null } {
  const source = spec.source ?? spec.url;
  const daemon = source.startsWith('rsync://');
  if (daemon ? !DAEMON_URL.test(source) : !(source.startsWith('/') && source.endsWith('/'))) {
    throw new TypeError(`rsync source must be rsync://host:port/MODULE/ or an absolute directory ending in '/', got ${JSON.stringify(source)}`);
  }
  if (!spec.target.startsWith('/')) throw new TypeError(`rsync target must be absolute, got ${JSON.stringify(spec.target)}`);
  if (/^\/+$/.test(spec.target)) throw new TypeError('refusing to mirror into the filesystem root');
  // The trailing slash names the directory itself even when it is a symlink to one.
  const target = spec.target.endsWith('/') ? spec.target : spec.target + '/';
  const bwlimit = count('bwlimit', spec.bwlimit);
  const timeout = count('timeout', spec.timeout);
  const maxDelete = count('maxDelete', spec.maxDelete);
  for (const e of spec.excludes) {
    if (e === '' || e.includes('\0')) throw new TypeError(`bad exclude pattern ${JSON.stringify(e)}`);
  }

  const plan = spec.changes.full ? null : planIncludes(spec.changes);
  const args: string[] = [
    // Recursive, symlinks copied as symlinks (never followed), perms, times.
    // Owner and group only as root: for anyone else -o fails on every file
    // and -g on most. Devices and specials: see mirrorSafety.
    spec.isRoot ? '-rlptgo' : '-rlpt',
    // --delete: a listed path gone from the source goes from the mirror.
    // Deletions happen during the transfer (rsync's default), directory by
    // directory, which frees space before new data lands and needs no list
    // kept to the end; --delete-delay/--delete-after only pay off with
    // --fuzzy or --delay-updates, which we do not use.
    // --force: lsyncd passes it; it lets a directory be replaced by a file
    // even if an `extra` turns deletions off.
    // No --ignore-errors: after an I/O error on the source rsync skips
    // deletions rather than act on an incomplete file list.
    '--delete',
    '--force',
    // The quick check compares size and mtime, by default in whole seconds,
    // so a same-size rewrite within the second of the copy would be skipped.
    // A negative window compares nanoseconds (receiver >= 3.1.3). It also
    // makes rsync fix a directory's mtime that differs only below the second;
    // without it, mirrored directories keep the sub-second part of the
    // mirror's own writes.
    '--modify-window=-1',
  ];
  // Even nanoseconds can tie: without multigrain timestamps (Linux < 6.13, or
  // a filesystem without them) mtimes come from a clock that ticks every
  // 1-10 ms (4 ms measured when nothing stats the file in between), so a
  // same-size rewrite in the tick of an earlier copy looks unchanged. When
  // every entry names precisely what changed (no tree), the listed files were
  // written, so comparing them all costs about what sending them costs anyway
  // (measured over the daemon: 1000 rewritten 4 KiB files, 0.4-0.9 s either
  // way). What it does cost is an attribute-only change of a big file, now
  // read on both sides (chmod of 512 MiB: 1.9 s instead of 0.14 s). A tree may
  // be a collapsed subtree of unchanged files, and a full sync is the whole
  // module: re-reading those would multiply the work exactly under load.
  // Nor are the files of a file-only batch always ones that were written: a
  // directory that appears (mkdir and writes, a rename, a move into the tree)
  // goes out as a tree, and the files the watcher then finds in it arrive in
  // the next batch, already copied by the tree's run. With -I that run sent
  // every one of them again (bench storm: 1,250 mirrored files re-sent per
  // agent, doubling the sync). So only small file-only runs, the
  // latency-bound edits, compare everything; bigger ones get the quick check
  // like trees.
  if (plan && plan.trees === 0 && plan.crowded === 0 && spec.changes.files.length <= MAX_IGNORE_TIMES_FILES) args.push('--ignore-times');
  if (daemon) {
    // Batches are small and latency-bound, and Nagle plus delayed ACKs stall
    // their many small messages (measured on loopback against a daemon that
    // sets it too: 73 ms per one-file run instead of 123 ms).
    args.push('--sockopts=TCP_NODELAY');
    // rsync refuses --contimeout without a daemon.
    if (timeout > 0) args.push(`--contimeout=${timeout}`);
  }
  if (timeout > 0) args.push(`--timeout=${timeout}`);
  if (bwlimit > 0) args.push(`--bwlimit=${bwlimit}`);
  // --max-delete=0 would forbid deletions altogether.
  if (maxDelete > 0) args.push(`--max-delete=${maxDelete}`);
  // Counts for parseRsyncStats, as plain digits: the default level 1 adds
  // locale-dependent thousands separators. No --out-format: a line per file
  // grows without bound on a big run, and the totals are all we report.
  args.push('--stats', '--no-human-readable');
  if (spec.dryRun) args.push('--dry-run');
  args.push(...spec.extra);
  // After `extra`, so an `-a` there (which implies -D) cannot undo them.
  args.push(...mirrorSafety(spec.optIns ?? {}));
  // Exclude site 4 of 4 (docs/ARCHITECTURE.md), the one that keeps the
  // mirror's own files: before the include list, since the first matching
  // rule wins, what they name is neither sent nor deleted on the mirror, even
  // when a batch lists it (the daemon's excludes only hide the origin's side).
  for (const e of spec.excludes) args.push(`--exclude=${e}`);
  // --from0 must come first: rsync reads the include file when it parses
  // --include-from. NUL-separated rules carry any name, newlines included.
  if (plan) args.push('--from0', '--include-from=-', '--filter=-p *');
  // rsync has no `--` before rsync:// operands, so the operands must not be
  // mistakable for options: both start with "rsync://" or "/".
  args.push(source, target);
  return { args, stdin: plan ? encodeRules(plan.rules) : null };
}

/**
 * rsync options that keep the origin's privileges off the mirror. All are
 * the receiver's own decisions (it skips the entries, rewrites the modes and
 * drops the xattrs it is sent), so a hostile daemon cannot override them. A
 * skipped device or special leaves whatever the mirror has under that name;
 * rsync prints `skipping non-regular file` on stdout and exits 0.
 */
function mirrorSafety(o: Partial<MirrorOptIns>): string[] {
  const out = [o.devices ? '--devices' : '--no-devices', o.specials ? '--specials' : '--no-specials'];
  if (o.setuid) return out;
  // Directories too, though a setgid directory grants nothing: the agent's
  // unit sets RestrictSUIDSGID=yes, under which setting the bit fails and
  // rsync exits 23 on every run. On an existing mirror the next run that
  // looks at an entry clears its bits.
  out.push('--chmod=ug-s');
  // File capabilities (cap_setuid+ep) are setuid by another name. They only
  // travel with -X, which `extra` may add; this xattr-only rule matches no
  // file and keeps them off the mirror.
  out.push('--filter=-x security.capability');
  return out;
}

function count(name: string, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`${name} must be a non-negative integer, got ${n}`);
  return n;
}
