// Renders the rsync daemon's configuration: rsyncd.conf, its secrets file and
// one daemon-side exclude file per module. Pure: the caller writes the files.
//
// Everything that reaches rsyncd.conf is validated first. The format is line
// based, a trailing "\" continues a line, "%VAR%" is expanded from the
// environment and "[" starts a module, so an unchecked name, path or pattern
// could add or change parameters (e.g. drop "read only" or "auth users").
import { posix } from 'node:path';
import { PRE_XFER_SCRIPT } from './only-module-root.js';

export interface RsyncdModule {
  /** module name; agents pull rsync://host:port/<name>/ */
  name: string;
  /** absolute, normalized directory served by the module */
  path: string;
  /** rsync exclude patterns (the `--exclude` syntax), relative to `path` */
  excludes: readonly string[];
}

export interface RsyncdUser {
  user: string;
  password: string;
}

export interface RsyncdSpec {
  modules: readonly RsyncdModule[];
  users: readonly RsyncdUser[];
  /** uid/gid transfers run as when the daemon is started as root */
  runAs: { uid: number; gid: number };
  /** private (0700) runtime directory holding secrets, exclude and lock files */
  dir: string;
  pidFile?: string;
  /**
   * Whether the daemon is started as root. Only root can chroot and switch
   * user; a non-root daemon given either refuses every connection. Default true.
   */
  privileged?: boolean;
  /** concurrent connections per module; default max(16, 4 per user) */
  maxConnections?: number;
}

export interface RsyncdFiles {
  conf: string;
  secrets: string;
  /** the `pre-xfer exec` script, to be written executable (0700) at `preXferFilePath(dir)` */
  preXfer: string;
  /** module name -> content of `excludeFilePath(dir, module)` */
  excludeFiles: Map<string, string>;
}

/**
 * Refused even though the modules are read-only, so that a later change to
 * "read only" or to a per-user ":rw" cannot turn them into a way to write.
 *
 * - delete: also refuses remove-source-files when the daemon sends. A pulling
 *   client never passes its --delete* options to the sending daemon (they act
 *   on the receiver only), so agents that pull with --delete keep working.
 * - remove-source-files: named as well so the intent is visible here.
 * - copy-links, copy-unsafe-links, copy-dirlinks: make the sending daemon
 *   follow symlinks. Symlinks must go to agents as symlinks; following them
 *   would serve files from outside the module.
 *
 * - files-from, include-from, exclude-from, filter: given to the daemon (a
 *   client can send any option: `rsync -M`), they name a file the daemon
 *   reads, checked against the excludes by the name given, not the file it
 *   leads to: `--exclude-from=/alias/f` with `alias -> secret` reads
 *   secret/f, and what the rules then hide tells its content. `--files-from`
 *   names the paths to send the same way (`alias/key.txt`). A normal client
 *   reads these options itself and sends only rules, so agents are unaffected.
 * - write-batch, only-write-batch, read-batch: batch files the daemon would
 *   write or read, by a name the client chooses.
 *
 * Every entry must be a real option name: rsync only logs "No match for
 * refuse-options string" for an unknown one and refuses nothing.
 */
export const REFUSED_OPTIONS = [
  'delete', 'remove-source-files', 'copy-links', 'copy-unsafe-links', 'copy-dirlinks',
  'files-from', 'include-from', 'exclude-from', 'filter', 'write-batch', 'only-write-batch', 'read-batch',
] as const;


/** Server-side I/O timeout: a stalled agent cannot hold a daemon process forever. */
export const DAEMON_TIMEOUT_S = 600;

/**
 * rsync's default backlog is 5; every agent pulls right after each batch, so a
 * burst of connections would otherwise see dropped SYNs and seconds of retry.
 */
export const LISTEN_BACKLOG = 256;

const MODULE_NAME_RE = /^[A-Za-z0-9._-]+$/;
const USER_RE = /^[A-Za-z0-9._-]+$/;
/** Printable ASCII without space: survives the secrets file and RSYNC_PASSWORD unchanged. */
const PASSWORD_RE = /^[\x21-\x7e]+$/;
const MAX_NAME = 255;
const MAX_PASSWORD = 512;
/**
 * rsync reads filter lines into a MAXPATHLEN + 1024 buffer and silently drops
 * longer ones (and patterns of MAXPATHLEN or more); a dropped exclude would
 * serve what it should hide, so long patterns are refused instead.
 */
const MAX_PATTERN_BYTES = 4000;

export function secretsFilePath(dir: string): string {
  return posix.join(dir, 'secrets');
}

export function excludeFilePath(dir: string, module: string): string {
  return posix.join(dir, `${module}.exclude`);
}

export function logFilePath(dir: string): string {
  return posix.join(dir, 'rsyncd.log');
}

export function preXferFilePath(dir: string): string {
  return posix.join(dir, 'only-module-root');
}

export function lockFilePath(dir: string, module: string): string {
  return posix.join(dir, `${module}.lock`);
}

export function renderRsyncdConf(spec: RsyncdSpec): RsyncdFiles {
  const privileged = spec.privileged ?? true;
  checkAbsPath(spec.dir, 'runtime dir');
  if (spec.pidFile !== undefined) checkAbsPath(spec.pidFile, 'pid file');
  checkId(spec.runAs.uid, 'runAs.uid');
  checkId(spec.runAs.gid, 'runAs.gid');
  checkUsers(spec.users);
  checkModules(spec.modules);
  // Each connection is a forked daemon process. The cap keeps a looping or
  // hostile agent from exhausting the origin, with room for every agent's
  // pull, a retry and a reconcile at once.
  const maxConnections = spec.maxConnections ?? Math.max(16, 4 * spec.users.length);
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new Error(`rsyncd: maxConnections must be a positive integer, got ${String(spec.maxConnections)}`);
  }

  const lines: string[] = [
    '# Written by the inosync master at start; rewritten at every start.',
    '# Passwords are not here: they are in the secrets file.',
  ];
  if (spec.pidFile !== undefined) lines.push(`pid file = ${confValue(spec.pidFile)}`);
  lines.push(
    // The default is syslog; the master tails this file into 'log' events.
    // Not /dev/stderr: Node gives a child a socketpair, not a pipe, for its
    // stderr, opening /dev/stderr then fails with ENXIO and rsync silently
    // falls back to syslog. Unlike a pipe, a file never blocks the daemon
    // when the master is slow to read.
    `log file = ${confValue(logFilePath(spec.dir))}`,
    // No DNS lookup of every client before it is answered: the name would
    // only feed "hosts allow", which is not used (authentication is the gate).
    'reverse lookup = no',
    // Small request/response exchanges otherwise wait on Nagle + delayed ACK
    // for tens of milliseconds each; agents pass --sockopts=TCP_NODELAY too.
    'socket options = TCP_NODELAY',
    `listen backlog = ${LISTEN_BACKLOG}`,
  );

  const auth = spec.users.map((u) => `${u.user}:ro`).join(' ');
  for (const m of spec.modules) {
    lines.push(
      '',
      `[${m.name}]`,
      // A trailing "/" keeps a trailing space or backslash part of the path
      // instead of being trimmed or read as a line continuation.
      `path = ${confValue(m.path === '/' ? m.path : `${m.path}/`)}`,
      'read only = yes',
      'write only = no',
      // An unlisted module is invisible to the anonymous module listing.
      'list = no',
      // Chroot confines every path the daemon opens to the module, whatever
      // symlinks inside it point at; only root can chroot.
      `use chroot = ${privileged ? 'yes' : 'no'}`,
      // Symlinks go out exactly as stored (munging rewrites their targets); it
      // only guards writable modules against uploaded links.
      'munge symlinks = no',
      // Names would be looked up inside the chroot, i.e. in a passwd file the
      // served tree may contain; ids are sent as numbers in both modes so
      // ownership does not depend on whether the master runs as root.
      'numeric ids = yes',
    );
    if (privileged) {
      // As root the daemon would otherwise serve as "nobody" and fail on
      // every file that only its owner can read.
      lines.push(`uid = ${spec.runAs.uid}`, `gid = ${spec.runAs.gid}`);
    }
    lines.push(
      // ":ro" keeps each user read-only even if "read only" is ever changed.
      `auth users = ${auth}`,
      `secrets file = ${confValue(secretsFilePath(spec.dir))}`,
      'strict modes = yes',
      // Exclude site 3 of 4, the one that protects (docs/ARCHITECTURE.md):
      // applied by the daemon itself, an excluded path looks absent to every
      // client, whatever --include/--files-from it sends. A missing file makes
      // the connection fail rather than serve unfiltered.
      `exclude from = ${confValue(excludeFilePath(spec.dir, m.name))}`,
      `max connections = ${maxConnections}`,
      // One lock file per module so the limit counts that module's connections only.
      `lock file = ${confValue(lockFilePath(spec.dir, m.name))}`,
      `timeout = ${DAEMON_TIMEOUT_S}`,
      'transfer logging = no',
      `refuse options = ${REFUSED_OPTIONS.join(' ')}`,
      `pre-xfer exec = ${confValue(preXferFilePath(spec.dir))}`,
    );
  }

  const excludeFiles = new Map<string, string>();
  for (const m of spec.modules) excludeFiles.set(m.name, renderExcludeFile(m));
  const secrets = spec.users.map((u) => `${u.user}:${u.password}\n`).join('');
  return { conf: lines.join('\n') + '\n', secrets, preXfer: PRE_XFER_SCRIPT, excludeFiles };
}

/**
 * One module's daemon exclude file. Each pattern is written twice:
 *
 *   - PATTERN        the entry itself, as --exclude=PATTERN would match it
 *   - PATTERN/***    everything below it
 *
 * The second line is what the rsyncd.conf(5) "filter" section asks for: a
 * daemon exclude of a directory need not cover a client naming a file inside
 * it (rsync://host/mod/dir/file, --files-from, --relative). rsync 3.2.7 also
 * refuses to enter an excluded parent by itself; the extra rule keeps the
 * guarantee from resting on that. A daemon pattern with a "/" is matched
 * against the full path from the module root (unanchored unless it starts
 * with "/"), so "cache/***" hides the content of every "cache" directory at
 * any depth, as --exclude=cache does during a recursive pull.
 *
 * The "- " prefix makes every line an exclude rule with the rest taken
 * verbatim: a "+ " or "!" after it is part of the pattern, and a line
 * starting with "#" or ";" is not read as a comment.
 */
function renderExcludeFile(m: RsyncdModule): string {
  let out = '';
  for (const raw of m.excludes) {
    const pattern = normalizePattern(raw, m.name);
    out += `- ${pattern}\n`;
    if (!pattern.endsWith('/***')) out += `- ${subtreeOf(pattern)}\n`;
  }
  return out;
}

/**
 * The pattern for everything below what `pattern` matches. Appending "/***"
 * makes the pattern a wildcard one, and rsync reads a backslash literally
 * only in patterns without wildcards, so such backslashes are escaped.
 */
function subtreeOf(pattern: string): string {
  const base = pattern.replace(/\/+$/, '');
  return `${/[*?[]/.test(base) ? base : base.replace(/\\/g, '\\\\')}/***`;
}

function normalizePattern(raw: string, module: string): string {
  const where = `module ${module}: exclude ${JSON.stringify(raw.slice(0, 100))}`;
  if (typeof raw !== 'string' || raw.length === 0) throw new Error(`rsyncd: ${where} is empty; remove it`);
  if (/[\0\n\r]/.test(raw)) throw new Error(`rsyncd: ${where} contains a NUL, newline or carriage return; rsync cannot express it`);
  // --exclude accepts the old "+ "/"- " prefixes and a lone "!" (clear the
  // list). An include or a clear inside the exclude list would switch off the
  // excludes before it, so only the harmless "- " is accepted.
  if (raw === '!') throw new Error(`rsyncd: ${where} would clear every exclude before it; remove it`);
  if (raw.startsWith('+ ')) throw new Error(`rsyncd: ${where} is an include rule; the exclude list takes excludes only`);
  const pattern = raw.startsWith('- ') ? raw.slice(2) : raw;
  if (pattern.length === 0) throw new Error(`rsyncd: ${where} has no pattern after "- "`);
  if (pattern.replace(/\/+$/, '') === '') throw new Error(`rsyncd: ${where} would exclude the whole module; remove the module instead`);
  if (Buffer.byteLength(pattern) > MAX_PATTERN_BYTES) throw new Error(`rsyncd: ${where} is longer than ${MAX_PATTERN_BYTES} bytes; rsync would drop it`);
  return pattern;
}

function checkModules(modules: readonly RsyncdModule[]): void {
  const seen = new Set<string>();
  for (const m of modules) {
    const n = m.name;
    if (typeof n !== 'string' || !MODULE_NAME_RE.test(n) || n.length > MAX_NAME) {
      throw new Error(`rsyncd: module name ${JSON.stringify(String(n).slice(0, 100))} is not allowed; use 1-${MAX_NAME} of A-Z a-z 0-9 . _ -`);
    }
    if (n === '.' || n === '..') throw new Error(`rsyncd: module name "${n}" is not allowed; it reads as a directory`);
    // "[global]" starts the global section instead of a module.
    if (n.toLowerCase() === 'global') throw new Error('rsyncd: module name "global" is reserved by rsyncd.conf; rename the path');
    if (seen.has(n)) throw new Error(`rsyncd: module name "${n}" is used twice; path names must be unique`);
    seen.add(n);
    checkAbsPath(m.path, `module ${n}: path`);
    if (!Array.isArray(m.excludes)) throw new Error(`rsyncd: module ${n}: excludes must be a list`);
    for (const e of m.excludes) normalizePattern(e, n);
  }
}

function checkUsers(users: readonly RsyncdUser[]): void {
  // An empty "auth users" means anonymous access to every module.
  if (users.length === 0) throw new Error('rsyncd: no users; without one every module would be open to anyone. Configure at least one node');
  const seen = new Set<string>();
  for (const { user, password } of users) {
    // Anything else could split the "auth users" list (space, comma), add an
    // option (":rw"), name a group ("@"), act as a wildcard or end the
    // "user:password" secrets line early.
    if (typeof user !== 'string' || !USER_RE.test(user) || user.length > MAX_NAME) {
      throw new Error(`rsyncd: user ${JSON.stringify(String(user).slice(0, 100))} is not allowed; use 1-${MAX_NAME} of A-Z a-z 0-9 . _ -`);
    }
    if (seen.has(user)) throw new Error(`rsyncd: user "${user}" appears twice; each node needs its own user`);
    seen.add(user);
    if (typeof password !== 'string' || !PASSWORD_RE.test(password) || password.length > MAX_PASSWORD) {
      throw new Error(`rsyncd: the password of user "${user}" must be 1-${MAX_PASSWORD} printable ASCII characters without spaces`);
    }
  }
}

function checkId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < 0 || id > 0xfffffffe) throw new Error(`rsyncd: ${what} must be a uid/gid number, got ${String(id)}`);
}

/** An absolute, normalized path that is safe to place in a parameter value. */
function checkAbsPath(p: string, what: string): void {
  const shown = JSON.stringify(String(p).slice(0, 200));
  if (typeof p !== 'string' || !p.startsWith('/')) throw new Error(`rsyncd: ${what} ${shown} must be an absolute path`);
  // Control characters end or corrupt the line (newline adds a parameter).
  if (/[\x00-\x1f\x7f]/.test(p)) throw new Error(`rsyncd: ${what} ${shown} contains a control character (newline, tab, ...); rename it`);
  // rsync splits a path at "/./" into chroot dir and inner path; "//" and
  // ".." would make the served tree differ from the one that was checked.
  if (p !== '/' && (posix.normalize(p) !== p || p.endsWith('/'))) {
    throw new Error(`rsyncd: ${what} ${shown} is not normalized; use ${JSON.stringify(posix.normalize(p).replace(/(.)\/$/, '$1'))}`);
  }
}

/**
 * A string parameter value, checked rather than escaped: rsyncd.conf has no
 * escapes. Leading and trailing whitespace would be trimmed, a trailing "\"
 * would join the next line, and "%NAME%" is replaced by the environment
 * variable NAME when it exists, including ones rsync sets per connection
 * (RSYNC_USER_NAME, ...). Despite rsyncd.conf(5), "%%" is not an escape:
 * rsync 3.2.7 keeps it as two "%" and still expands a reference after it.
 */
function confValue(v: string): string {
  if (/^\s|\s$|\\$/.test(v)) throw new Error(`rsyncd: ${JSON.stringify(v)} starts or ends with whitespace or ends with "\\"; rsyncd.conf cannot hold it`);
  const ref = /%[A-Z][^%]*%/.exec(v);
  if (ref !== null) {
    throw new Error(`rsyncd: ${JSON.stringify(v)} contains ${JSON.stringify(ref[0])}, which rsyncd.conf would replace with an environment variable; rename it`);
  }
  return v;
}
