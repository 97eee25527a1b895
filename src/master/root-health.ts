// Is a watched root still the directory we started with? A root that
// vanished, became unreadable, was unmounted or replaced looks to rsync
// exactly like "everything was deleted", and its watcher sees nothing more.
// One identity, one verdict (pure), one poller; the watcher and the master
// each decide which problems matter to them.
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { realClock, type Clock } from '../common/clock.js';
import { every, type Repeating } from './every.js';

/** What the root was when watching began. */
export interface RootIdentity {
  dev: number;
  ino: number;
  /** a marker file was required and present */
  marker: boolean;
}

/** One look at the root; fields left null were not looked at. */
export type RootObservation =
  | { found: false; code: string }
  | { found: true; isDir: boolean; dev: number; ino: number; readable: boolean | null; marker: boolean | null };

export type RootProblem =
  | 'gone' // stat says ENOENT or ENOTDIR
  | 'unstattable' // stat failed otherwise
  | 'not-dir'
  | 'unreadable'
  | 'other-fs' // another device: unmounted, or a mount over it
  | 'replaced' // same device, another inode: deleted and made again, or a symlink repointed
  | 'no-marker';

export type RootVerdict =
  | { ok: true; identity: RootIdentity }
  | {
      ok: false;
      problem: RootProblem;
      /** what happened to the root, to follow "watched root <dir> " */
      what: string;
      /** the whole sentence */
      reason: string;
    };

/**
 * Judges an observation against the identity at start (null: at start, when
 * anything found is the identity). Problems are checked in a fixed order and
 * the first one not in `tolerate` is the verdict.
 */
export function judgeRoot(
  root: string,
  markerName: string | undefined,
  obs: RootObservation,
  expected: RootIdentity | null,
  tolerate: ReadonlySet<RootProblem> = NONE,
): RootVerdict {
  const bad = (problem: RootProblem, what: string, reason = `watched root ${root} ${what}`): RootVerdict => ({ ok: false, problem, what, reason });
  if (!obs.found) {
    if (obs.code === 'ENOENT' || obs.code === 'ENOTDIR') return bad('gone', `is gone (was deleted or moved away: ${obs.code})`);
    return bad('unstattable', `can no longer be read (${obs.code})`);
  }
  const found: RootVerdict[] = [];
  if (!obs.isDir) found.push(bad('not-dir', 'is no longer a directory'));
  if (obs.readable === false) found.push(bad('unreadable', 'is not readable'));
  if (expected !== null && obs.dev !== expected.dev) found.push(bad('other-fs', 'is on another filesystem than at start (unmounted?)'));
  if (expected !== null && obs.dev === expected.dev && obs.ino !== expected.ino) {
    found.push(bad('replaced', 'now refers to a different directory (deleted and made again, or replaced)'));
  }
  if (obs.marker === false && (expected === null || expected.marker)) {
    found.push(bad('no-marker', 'has lost its marker file', `marker file ${join(root, markerName ?? '')} is missing (source not mounted?)`));
  }
  const first = found.find((v) => !v.ok && !tolerate.has(v.problem));
  return first ?? { ok: true, identity: { dev: obs.dev, ino: obs.ino, marker: obs.marker === true } };
}

const NONE: ReadonlySet<RootProblem> = new Set();

/** Looks at the root (symlinks followed); `readable` and the marker only when asked. */
export function observeRoot(root: string, opts: { readable?: boolean; marker?: string | undefined } = {}): RootObservation {
  let st;
  try {
    st = statSync(root);
  } catch (err) {
    return { found: false, code: (err as NodeJS.ErrnoException).code ?? (err as Error).message };
  }
  let readable: boolean | null = null;
  if (opts.readable) {
    try {
      accessSync(root, constants.R_OK | constants.X_OK);
      readable = true;
    } catch {
      readable = false;
    }
  }
  let marker: boolean | null = null;
  if (opts.marker !== undefined) {
    try {
      statSync(join(root, opts.marker));
      marker = true;
    } catch {
      marker = false;
    }
  }
  return { found: true, isDir: st.isDirectory(), dev: st.dev, ino: st.ino, readable, marker };
}

/** How often a root is looked at for what no event reports (an unmount, a repointed symlink). */
export const ROOT_CHECK_MS = 2_000;

export interface RootPollerOptions {
  root: string;
  /** the path's marker file, looked at when set */
  marker?: string | undefined;
  /** whether readability is looked at */
  readable?: boolean;
  everyMs?: number;
  clock?: Clock;
  /** each look; the caller judges it (judgeRoot) against what it expects */
  onLook: (obs: RootObservation) => void;
}

/** Looks at one root every `everyMs` and hands each observation over. */
export class RootPoller {
  private timer: Repeating | null = null;

  constructor(private readonly o: RootPollerOptions) {}

  start(): void {
    this.timer ??= every(this.o.clock ?? realClock, this.o.everyMs ?? ROOT_CHECK_MS, () => this.check());
  }

  stop(): void {
    this.timer?.stop();
    this.timer = null;
  }

  /** One look now. */
  check(): void {
    this.o.onLook(observeRoot(this.o.root, { readable: this.o.readable ?? false, marker: this.o.marker }));
  }
}

/**
 * For a watcher: reports once, the first time the root stops being the
 * directory it started watching. Any change of identity counts, a new inode
 * on the same device too: its watches died with the old directory.
 */
export function guardWatchedRoot(root: { configured: string; dev: number; ino: number }, lost: (what: string) => void): RootPoller {
  const expected: RootIdentity = { dev: root.dev, ino: root.ino, marker: false };
  let reported = false;
  const poller: RootPoller = new RootPoller({
    root: root.configured,
    onLook: (obs) => {
      const v = judgeRoot(root.configured, undefined, obs, expected);
      if (v.ok || reported) return;
      reported = true;
      poller.stop();
      lost(v.what);
    },
  });
  return poller;
}
