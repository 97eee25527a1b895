// The master drops filesystem events for paths that rsync will not transfer,
// so this matcher must reach rsync's verdict for every path: a disagreement
// either loses a change or syncs for nothing. It follows rsync 3.2.x
// (exclude.c's rule flags, wildmatch.c's matching) and is checked against the
// real binary by test/excludes-rsync.test.ts.
//
// rsync matches bytes, not characters: '?' takes one byte of a UTF-8
// sequence, and classes hold bytes. Patterns and paths are therefore compared
// as "byte strings" (UTF-8 bytes stored one per UTF-16 unit, i.e. latin1),
// unless no pattern can match part of a character (see charTokens).
// Each pattern becomes a regular expression over the whole path that asks
// "does the path, or any ancestor directory, match?": every ancestor of
// 'a/b/c' is a prefix ending just before a '/', so one search covers them all.

import { PATH_MAX } from '../protocol/relpath.js';

export interface ExcludeMatcher {
  /** rel: a relative path like 'a/b/c' (no leading/trailing slash); isDir: whether rel itself is a directory. True if rsync would not transfer it because of the patterns (the path itself or an ancestor directory matches). */
  isExcluded(rel: string, isDir: boolean): boolean;
  /** Same but only considering rel itself, not its ancestors (used when walking a tree top-down). */
  matchesSelf(rel: string, isDir: boolean): boolean;
}

export class ExcludePatternError extends Error {
  constructor(
    readonly pattern: string,
    readonly problem: string,
  ) {
    super(`invalid exclude pattern ${JSON.stringify(pattern)}: ${problem}`);
    this.name = 'ExcludePatternError';
  }
}

/**
 * Why rsync would not read `pattern` the way the matcher does, or null. The
 * syntax is that of --exclude; a daemon exclude file must hold it as a
 * "- PATTERN" line (a bare line starting with "#" or ";" is a comment there).
 */
export function excludePatternProblem(pattern: string): string | null {
  const r = analyse(pattern);
  return 'problem' in r ? r.problem : null;
}

export function compileExcludes(patterns: readonly string[]): ExcludeMatcher {
  let rules: Rule[] = [];
  for (const p of patterns) {
    const r = analyse(p);
    if ('problem' in r) throw new ExcludePatternError(p, r.problem);
    rules.push(r);
  }
  const bytewise = rules.some((r) => r.toks.some((t) => t.partial));
  if (!bytewise) rules = rules.map((r) => ({ ...r, toks: charTokens(r.toks) }));
  const form = bytewise ? toBytes : (s: string) => s;
  const closureFile = combine(rules, 'closureFile');
  const closureDir = combine(rules, 'closureDir');
  const selfFile = combine(rules, 'selfFile');
  const selfDir = combine(rules, 'selfDir');
  return {
    isExcluded(rel, isDir) {
      if (rel === '') return false; // rsync never filters the transfer root
      return (isDir ? closureDir : closureFile).test(form(rel));
    },
    matchesSelf(rel, isDir) {
      if (rel === '') return false;
      return (isDir ? selfDir : selfFile).test(form(rel));
    },
  };
}

// ---------------------------------------------------------------------------
// Tokens: one pattern element each, as regex source over byte strings.

type TokKind = 'one' | 'slash' | 'star' | 'star2';
interface Tok {
  kind: TokKind; // 'one': a fixed run of bytes without '/'; 'slash': a literal '/'
  src: string;
  /** the byte, for a literal */
  byte?: number;
  /** can match a lone byte of a multi-byte UTF-8 character */
  partial?: boolean;
}
const STAR: Tok = { kind: 'star', src: '[^/]*' };
const STAR2: Tok = { kind: 'star2', src: '[^]*' };
const ANY: Tok = { kind: 'one', src: '[^/]', partial: true };

function literal(code: number): Tok {
  if (code === 0x2f) return { kind: 'slash', src: '/', byte: code };
  return { kind: 'one', src: hex(code), byte: code };
}

/**
 * The same tokens over UTF-16 text. Valid only when no token is `partial`:
 * then every literal run starts on a character boundary (a UTF-8 lead byte
 * never occurs inside a character), so the stars between them span whole
 * characters, and matching characters gives the byte-wise verdict.
 */
function charTokens(toks: readonly Tok[]): Tok[] {
  const out: Tok[] = [];
  for (let i = 0; i < toks.length; ) {
    if ((toks[i]!.byte ?? 0) < 0x80) {
      out.push(toks[i++]!);
      continue;
    }
    const bytes: number[] = [];
    while (i < toks.length && (toks[i]!.byte ?? 0) >= 0x80) bytes.push(toks[i++]!.byte!);
    const text = Buffer.from(bytes).toString('utf8');
    let src = '';
    for (let k = 0; k < text.length; k++) src += '\\u' + text.charCodeAt(k).toString(16).padStart(4, '0');
    out.push({ kind: 'one', src });
  }
  return out;
}

function hex(code: number): string {
  if ((code >= 0x30 && code <= 0x39) || isAlpha(code)) return String.fromCharCode(code);
  return '\\x' + code.toString(16).padStart(2, '0');
}

/**
 * How rsync applies a rule (rule_matches in exclude.c):
 * - 'anchor': the pattern must match the whole path;
 * - 'boundary': it must match a trailing run of whole components;
 * - 'vslash': the path is preceded by a virtual '/', so a leading "**" + "/" can match zero directories.
 *
 * rsync also counts a pattern's slashes to decide how many trailing
 * components to match, but that count equals the slashes the pattern can
 * match once a '/' inside a class is refused, so 'boundary' covers it.
 */
type Start = 'anchor' | 'boundary' | 'vslash';

interface Rule {
  toks: Tok[];
  start: Start;
  /** trailing '/': only directories match */
  dirOnly: boolean;
  /** ends in "***": a directory is matched with a '/' appended, so "dir/***" takes dir itself */
  wild3: boolean;
}

const CLASS_NAMES: Record<string, (c: number) => boolean> = {
  alnum: (c) => isDigit(c) || isAlpha(c),
  alpha: (c) => isAlpha(c),
  blank: (c) => c === 0x20 || c === 0x09,
  cntrl: (c) => c < 0x20 || c === 0x7f,
  digit: (c) => isDigit(c),
  graph: (c) => c > 0x20 && c < 0x7f,
  lower: (c) => c >= 0x61 && c <= 0x7a,
  print: (c) => c >= 0x20 && c < 0x7f,
  punct: (c) => c > 0x20 && c < 0x7f && !isDigit(c) && !isAlpha(c),
  space: (c) => (c >= 0x09 && c <= 0x0d) || c === 0x20,
  upper: (c) => c >= 0x41 && c <= 0x5a,
  xdigit: (c) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66),
};
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isAlpha(c: number): boolean {
  return (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Reasons to refuse that rsync itself accepts: each is a pattern that never matches, or one the client and the daemon read differently. */
function formProblem(pattern: string): string | null {
  if (pattern === '') return 'empty pattern';
  if (/[\0\n\r]/.test(pattern)) return 'contains a NUL, newline or carriage return (rsync reads exclude files line by line)';
  if (LONE_SURROGATE.test(pattern)) return 'not valid Unicode (lone surrogate)';
  if (Buffer.byteLength(pattern) > PATH_MAX) return `longer than ${PATH_MAX} bytes`;
  if (/^[-+] /.test(pattern)) return 'rsync reads a leading "- " or "+ " as a rule prefix; write "[-] ..." to match a name starting with "- "';
  if (pattern === '!') return 'rsync reads "!" as "clear the exclude list"';
  if (/^\/+$/.test(pattern)) return 'the transfer root itself is never excluded; use "/*" to exclude everything in it';
  if (pattern.includes('//')) return 'contains an empty path component ("//"), which never matches';
  if (pattern.split('/').some((c) => c === '.' || c === '..')) return 'contains a "." or ".." component, which never matches';
  return null;
}

function analyse(pattern: string): Rule | { problem: string } {
  if (typeof pattern !== 'string') return { problem: 'not a string' };
  const problem = formProblem(pattern);
  if (problem) return { problem };

  let p = pattern;
  const dirOnly = p.length > 1 && p.endsWith('/');
  if (dirOnly) p = p.slice(0, -1);
  // rsync decides these from the raw text, escapes included.
  const wild = /[*?[]/.test(p);
  const wild2 = wild && p.includes('**');
  const wild3 = wild2 && p.endsWith('***');
  const anchored = p.startsWith('/');

  // The daemon rewrites "x/" as "x/***", which can change what x means.
  if (!wild && dirOnly && p.includes('\\')) {
    return {
      problem:
        'an rsync client reads a backslash in a wildcard-free pattern literally, but the rsync daemon turns "dir/" into "dir/***" and then reads it as an escape; write a literal backslash as "[\\\\]"',
    };
  }
  if (/^\*{2,}\/$/.test(pattern)) return { problem: 'the rsync daemon reads "**/" as "**/***", which also matches top-level files; use "*/" to match every directory' };
  if (wild3 && dirOnly) return { problem: 'rsync clients and daemons read a trailing "***/" differently; use "/***" or "**/"' };

  const body = toBytes(anchored ? p.slice(1) : p);
  let toks: Tok[];
  if (wild) {
    const parsed = parseWild(body);
    if (typeof parsed === 'string') return { problem: parsed };
    toks = parsed;
  } else {
    toks = Array.from(body, (ch) => literal(ch.charCodeAt(0)));
  }

  const start: Start = anchored ? 'anchor' : wild2 && p.startsWith('**') ? 'vslash' : 'boundary';
  return { toks, start, dirOnly, wild3 };
}

/** wildmatch.c's syntax; returns a problem for the forms it aborts on (they never match). */
function parseWild(b: string): Tok[] | string {
  const toks: Tok[] = [];
  let i = 0;
  while (i < b.length) {
    const c = b.charCodeAt(i);
    if (c === 0x5c /* \ */) {
      if (i + 1 >= b.length) return 'ends with a backslash that escapes nothing, so it never matches';
      toks.push(literal(b.charCodeAt(i + 1)));
      i += 2;
    } else if (c === 0x3f /* ? */) {
      toks.push(ANY);
      i++;
    } else if (c === 0x2a /* * */) {
      let j = i;
      while (j < b.length && b.charCodeAt(j) === 0x2a) j++;
      toks.push(j - i === 1 ? STAR : STAR2);
      i = j;
    } else if (c === 0x5b /* [ */) {
      const cls = parseClass(b, i + 1);
      if (typeof cls === 'string') return cls;
      toks.push(cls.tok);
      i = cls.end;
    } else {
      toks.push(literal(c));
      i++;
    }
  }
  return toks;
}

/** A class starting just after '['; `end` is the index after its ']'. */
function parseClass(b: string, i: number): { tok: Tok; end: number } | string {
  const open = i;
  const unterminated = 'unterminated "[" class, so it never matches; write "\\[" for a literal bracket';
  const set = new Array<boolean>(256).fill(false);
  const negate = b[i] === '!' || b[i] === '^';
  if (negate) i++;
  let prev = -1; // the previous single byte, which a following '-' turns into a range start
  let first = true; // a ']' right after "[" or "[!" is a member, not the end
  for (;;) {
    if (i >= b.length) return unterminated;
    let c = b.charCodeAt(i);
    if (c === 0x5d /* ] */ && !first) break;
    first = false;
    if (c === 0x5c /* \ */) {
      if (++i >= b.length) return unterminated;
      c = b.charCodeAt(i);
      set[c] = true;
      prev = c;
      i++;
    } else if (c === 0x2d /* - */ && prev >= 0 && i + 1 < b.length && b[i + 1] !== ']') {
      i++;
      let hi = b.charCodeAt(i);
      if (hi === 0x5c) {
        if (++i >= b.length) return unterminated;
        hi = b.charCodeAt(i);
      }
      for (let x = prev; x <= hi; x++) set[x] = true;
      prev = -1;
      i++;
    } else if (c === 0x5b /* [ */ && b[i + 1] === ':') {
      const close = b.indexOf(']', i + 2);
      if (close < 0) return unterminated;
      if (close - 1 < i + 2 || b[close - 1] !== ':') {
        // No ":]" before the first ']': the '[' is an ordinary member.
        set[c] = true;
        prev = c;
        i++;
        continue;
      }
      const name = b.slice(i + 2, close - 1);
      const test = Object.hasOwn(CLASS_NAMES, name) ? CLASS_NAMES[name] : undefined;
      if (!test) return `unknown character class "[:${name}:]", so it never matches`;
      for (let x = 0; x < 128; x++) if (test(x)) set[x] = true;
      prev = -1;
      i = close + 1;
    } else {
      set[c] = true;
      prev = c;
      i++;
    }
  }
  if (b.slice(open, i).includes('/')) {
    return 'a "/" inside a [...] class never matches a "/", and rsync clients and daemons disagree on what such a pattern matches';
  }
  let src = '';
  for (let x = 0; x < 256; x++) {
    if (x === 0x2f || set[x] === negate) continue; // a class never matches '/'
    let y = x;
    while (y + 1 < 256 && y + 1 !== 0x2f && set[y + 1] !== negate) y++;
    src += y === x ? hex(x) : `${hex(x)}-${hex(y)}`;
    x = y;
  }
  const partial = set.some((member, x) => x >= 0x80 && member !== negate);
  return { tok: { kind: 'one', src: `[${src}]`, partial }, end: i + 1 };
}

// ---------------------------------------------------------------------------
// Regex assembly.

/**
 * What may follow a match:
 * - 'ancestor': the end of some candidate (the path or an ancestor directory);
 * - 'ancestorDir': the end of an ancestor directory;
 * - 'self': the end of the path;
 * - 'open': anything (the pattern's tail is a "***" that swallows the rest).
 */
type End = 'ancestor' | 'ancestorDir' | 'self' | 'open';
const END_SRC: Record<End, string> = {
  ancestor: '(?=/|$)',
  ancestorDir: '(?=/)',
  self: '$',
  open: '',
};

type Variant = 'closureFile' | 'closureDir' | 'selfFile' | 'selfDir';

const BOUNDARY = '(?:^|/)';

function combine(rules: readonly Rule[], v: Variant): RegExp {
  const groups: Groups = { n: 0 };
  const alts: string[] = [];
  for (const r of rules) alts.push(...alternatives(r, v, groups));
  return alts.length === 0 ? /(?!)/ : new RegExp(alts.map((a) => `(?:${a})`).join('|'));
}

function alternatives(r: Rule, v: Variant, g: Groups): string[] {
  const isDir = v === 'closureDir' || v === 'selfDir';
  const closure = v === 'closureFile' || v === 'closureDir';
  if (!r.wild3) {
    if (closure) return anchoredAt(r.start, r.toks, r.dirOnly && !isDir ? 'ancestorDir' : 'ancestor', g);
    return r.dirOnly && !isDir ? [] : anchoredAt(r.start, r.toks, 'self', g);
  }
  // rsync appends '/' to a directory before matching "...***", so for a
  // directory the part before the stars (q) may also consume that virtual '/'.
  // (A "***" pattern is never dirOnly: analyse refuses "***/".)
  const q = r.toks.slice(0, -1);
  const out = anchoredAt(r.start, q, 'open', g);
  if (isDir && q[q.length - 1]?.kind === 'slash') out.push(...anchoredAt(r.start, q.slice(0, -1), 'self', g));
  return out;
}

function anchoredAt(start: Start, toks: readonly Tok[], end: End, g: Groups): string[] {
  switch (start) {
    case 'anchor':
      return [sequence('^', toks, end, g)];
    case 'boundary':
      return [sequence(BOUNDARY, toks, end, g)];
    case 'vslash': {
      // Match "/" + path: strip the virtual '/' off the front of the pattern.
      // With nothing left, the "***" after these tokens swallows it.
      if (toks.length === 0) return end === 'open' ? ['^'] : [];
      const out: string[] = [];
      const [t0, t1] = toks;
      if (t0?.kind === 'star2') {
        out.push(sequence('^', toks, end, g));
        if (t1?.kind === 'slash') out.push(sequence('^', toks.slice(2), end, g));
      } else if (t0?.kind === 'slash') {
        out.push(sequence('^', toks.slice(1), end, g));
      }
      return out;
    }
  }
}

/** Names the capture groups of one combined regex. */
interface Groups {
  n: number;
}

/*
 * Naive backtracking over several stars takes time polynomial in the path
 * length with the number of stars as exponent, and paths come from whoever
 * can write in the watched tree. So the regex commits, where that loses no
 * match, to the earliest match of a part: `(?=(?<g>X*?A))\k<g>` finds it and a
 * lookahead is never backtracked into.
 *
 * Split at "**", a pattern is groups of fixed pieces joined by single '*'s,
 * which stay within one component. Inside a group, taking each piece at its
 * earliest position never hurts: the next '*' can absorb the difference (a
 * piece holding a '/' has only one position anyway). And a group's earliest
 * start gives its earliest end, which is all that a following "**" needs.
 * Only the last group, which must end at a component boundary, backtracks.
 */
function sequence(start: '^' | typeof BOUNDARY, toks: readonly Tok[], end: End, g: Groups): string {
  const groups: Tok[][] = [[]];
  for (const t of toks) {
    if (t.kind === 'star2') groups.push([]);
    else groups[groups.length - 1]!.push(t);
  }
  const last = groups.length - 1;
  const absorbing = end === 'open';
  let src =
    start !== '^' && last > 0
      ? '^' + commit('(?:[^]*?/)??', groups[0]!, g) // the earliest boundary where the first group fits
      : start + group(groups[0]!, last > 0 || absorbing, g);
  for (let i = 1; i <= last; i++) {
    const grp = groups[i]!;
    if (grp.length > 0 && (i < last || absorbing)) src += commit('[^]*?', grp, g);
    else src += STAR2.src + group(grp, false, g);
  }
  return src + END_SRC[end];
}

/** `prefix` then the group at its earliest position, committed. */
function commit(prefix: string, grp: readonly Tok[], g: Groups): string {
  const name = `g${++g.n}`;
  return `(?=(?<${name}>${prefix}${group(grp, true, g)}))\\k<${name}>`;
}

/** Fixed pieces joined by single '*'; each piece is committed unless it is the last one and `commitLast` is false. */
function group(grp: readonly Tok[], commitLast: boolean, g: Groups): string {
  const pieces: string[] = [''];
  for (const t of grp) {
    if (t.kind === 'star') pieces.push('');
    else pieces[pieces.length - 1] += t.src;
  }
  let src = pieces[0]!;
  for (let j = 1; j < pieces.length; j++) {
    const piece = pieces[j]!;
    if (j === pieces.length - 1 && !commitLast) {
      src += STAR.src + piece;
    } else if (piece !== '') {
      const name = `g${++g.n}`;
      src += `(?=(?<${name}>${STAR.src}?${piece}))\\k<${name}>`;
    } // else a trailing '*' before something that absorbs it: nothing to match
  }
  return src;
}

const NON_ASCII = /[^\x00-\x7f]/;
const scratch = Buffer.allocUnsafe(4 * PATH_MAX);

/** UTF-8 bytes, one per UTF-16 unit; ASCII strings are already in that form. */
function toBytes(s: string): string {
  if (!NON_ASCII.test(s)) return s;
  if (s.length * 3 > scratch.length) return Buffer.from(s, 'utf8').toString('latin1');
  return scratch.toString('latin1', 0, scratch.write(s, 'utf8'));
}
