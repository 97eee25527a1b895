// chokidar's own events miss things a mirror needs (measured on 5.0.0):
// - a second write within 50 ms of the first: its `change` throttle has no
//   trailing edge, so the last write of a burst can go unreported;
// - chmod/chown/utimes on a file read since its last write: it drops `change`
//   when atime > mtime and mtime did not move;
// - any attribute change on a directory;
// - dangling symlinks: with followSymlinks off it still realpath()s a new
//   symlink and silently skips it when that fails.
// Its `raw` events are the fs.watch (inotify) events underneath every watched
// file and directory; this turns them into the missing events. Reports can
// duplicate chokidar's own (a write shows as two `modify`): the consumer
// coalesces, and a duplicate costs less than a miss.

import { lstat, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { EventQueue } from './event-queue.js';
import type { Exclusion } from './exclude.js';
import { PathLanes } from './lanes.js';
import type { WatchEvent } from './types.js';

export class RawSupplement {
  /** dangling symlinks reported as created, by path, with their inode */
  private readonly dangling = new Map<string, number>();
  /** per-path serialization: a delete must not overtake the create before it */
  private readonly lanes = new PathLanes<WatchEvent>();

  constructor(
    private readonly rel: (abs: string) => string | null,
    private readonly ex: Exclusion,
    private readonly queue: EventQueue,
  ) {}

  /** Arguments as chokidar's `raw` event passes them. */
  onRaw(type: string, name: string | null, watchedPath: string): void {
    if (!name) return;
    // A watch on a file reports events about itself under its own basename;
    // a watch on a directory reports its children by name. A directory
    // holding a child of its own name is ambiguous; both readings are tried.
    if (name === basename(watchedPath)) this.selfEvent(type, watchedPath);
    if (type === 'rename') this.childEvent(join(watchedPath, name));
    else if (type === 'change') this.childChange(join(watchedPath, name));
  }

  /** A deleted directory takes its dangling symlinks with it. */
  forgetBelow(relDir: string): void {
    const prefix = relDir + '/';
    for (const p of this.dangling.keys()) {
      if (p.startsWith(prefix)) this.dangling.delete(p);
    }
  }

  private selfEvent(type: string, abs: string): void {
    const rel = this.rel(abs);
    if (!rel) return;
    // inotify flags events on directories with IN_ISDIR, which fs.watch turns
    // into 'rename' even for a chmod; plain files' attribute and content
    // changes arrive as 'change'.
    const wantDir = type !== 'change';
    this.enqueue(rel, async () => {
      const st = await lstatOrNull(abs);
      if (!st || st.isDirectory() !== wantDir || st.isSymbolicLink()) return null;
      return this.ex.excluded(rel, wantDir) ? null : { kind: 'modify', path: rel, isDir: wantDir };
    });
  }

  private childEvent(abs: string): void {
    const rel = this.rel(abs);
    if (!rel) return;
    this.enqueue(rel, async () => {
      const st = await lstatOrNull(abs);
      const known = this.dangling.get(rel);
      if (!st) {
        this.dangling.delete(rel);
        // Also when never reported created: a dangling symlink that existed
        // before watching started, or was made in a new directory before its
        // watch was in place, is known neither here nor to chokidar, yet a
        // sync of the directory copied it. For what chokidar knows this
        // repeats its own unlink; a duplicate costs less than a miss. Not
        // when the watch was a file's own (the child reading is then bogus)
        // nor when the directory went too: its own delete covers everything.
        if (known === undefined) {
          if (this.ex.excluded(rel, false) || this.ex.excluded(rel, true)) return null;
          if (!(await lstatOrNull(dirname(abs)))?.isDirectory()) return null;
        }
        return { kind: 'delete', path: rel, isDir: false };
      }
      if (!st.isSymbolicLink() || (await resolves(abs))) {
        this.dangling.delete(rel);
        // chokidar reports these itself, except a file that took the place
        // of a symlink it followed (an editor's save over a link moved into
        // place): its watch stays on the old target, and it reports neither
        // the new file nor later writes to it.
        if (st.isDirectory() || this.ex.excluded(rel, false)) return null;
        return { kind: 'create', path: rel, isDir: false };
      }
      if (this.ex.excluded(rel, false)) return null;
      this.dangling.set(rel, st.ino);
      if (known === undefined) return { kind: 'create', path: rel, isDir: false };
      return known === st.ino ? null : { kind: 'modify', path: rel, isDir: false };
    });
  }

  /** A write to a child, as its directory's watch saw it (see childEvent for why chokidar's is not enough). */
  private childChange(abs: string): void {
    const rel = this.rel(abs);
    if (!rel) return;
    this.enqueue(rel, async () => {
      const st = await lstatOrNull(abs);
      if (!st || st.isDirectory() || this.ex.excluded(rel, false)) return null;
      return { kind: 'modify', path: rel, isDir: false };
    });
  }

  private enqueue(rel: string, check: () => Promise<WatchEvent | null>): void {
    this.queue.push(this.lanes.run(rel, check));
  }
}

async function lstatOrNull(abs: string): Promise<Stats | null> {
  try {
    return await lstat(abs);
  } catch {
    return null;
  }
}

async function resolves(abs: string): Promise<boolean> {
  try {
    await stat(abs);
    return true;
  } catch {
    return false;
  }
}
