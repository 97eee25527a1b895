// From watcher events to the changes a batch carries, and a batch's size and
// log line. Pure.
import type { ChangeKind, PathChanges } from '../protocol/changes.js';
import { MAX_BATCH_ENTRIES } from '../protocol/limits.js';
import type { WatchEvent, WatchEventKind } from './watcher/types.js';

/** Whether the configured `events` admit this event. */
export function admits(allowed: readonly string[], kind: WatchEventKind): boolean {
  // A rename reaches us as delete + create, so `move` admits both.
  if (allowed.includes(kind)) return true;
  if (allowed.includes('move') && (kind === 'create' || kind === 'delete')) return true;
  // inotify says IN_MODIFY or IN_ATTRIB in one breath (libuv's 'change'), so
  // the watchers report a chmod as `modify`: either kind admits both.
  return (allowed.includes('modify') || allowed.includes('attrib')) && (kind === 'modify' || kind === 'attrib');
}

export function kindOf(ev: WatchEvent): ChangeKind {
  // A deleted plain path stays a `file` entry: rsync's perishable catch-all
  // still removes it if it was a directory on the mirror, and a batch of
  // files keeps --ignore-times. A deleted or new directory covers its subtree.
  if (ev.isDir) return ev.kind === 'create' || ev.kind === 'delete' ? 'tree' : 'dir';
  return 'file';
}

/** Keeps each batch under the per-frame entry limit. */
export function splitChanges(changes: PathChanges[]): PathChanges[][] {
  const count = (c: PathChanges) => c.files.length + c.dirs.length + c.trees.length;
  if (changes.reduce((n, c) => n + count(c), 0) <= MAX_BATCH_ENTRIES) return [changes];
  const out: PathChanges[][] = [];
  for (const c of changes) {
    if (count(c) <= MAX_BATCH_ENTRIES) {
      out.push([c]);
      continue;
    }
    // Beyond what one frame may carry: a full sync of the path says the same in one line.
    out.push([{ name: c.name, full: true, files: [], dirs: [], trees: [] }]);
  }
  return out;
}

/** Entries a batch's debug line names per path: enough to follow a catch-up, bounded for a flood. */
const SUMMARY_ENTRIES = 20;

export function summarize(changes: PathChanges[]): string {
  return changes
    .map((c) => {
      if (c.full) return `${c.name}:full`;
      const all = [...c.files, ...c.dirs.map((d) => d + '/'), ...c.trees.map((t) => t + '/***')];
      return `${c.name}:${all.slice(0, SUMMARY_ENTRIES).join(',')}${all.length > SUMMARY_ENTRIES ? ',...' : ''}`;
    })
    .join(' ');
}
