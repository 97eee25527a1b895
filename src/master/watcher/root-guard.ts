// Notices the root going away in ways no event reports: an unmount (inotify's
// IN_UNMOUNT reaches neither backend's callbacks), a configured symlink being
// pointed elsewhere, or a directory replaced by another one of the same name.

import { stat } from 'node:fs/promises';
import type { Root } from './root.js';

const CHECK_EVERY_MS = 2000;

export class RootGuard {
  private timer: NodeJS.Timeout | undefined;
  private checking = false;

  constructor(
    private readonly root: Root,
    private readonly lost: (what: string) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  async check(): Promise<void> {
    if (this.checking || !this.timer) return;
    this.checking = true;
    try {
      const what = await this.whatHappened();
      if (what && this.timer) {
        this.stop();
        this.lost(what);
      }
    } finally {
      this.checking = false;
    }
  }

  private async whatHappened(): Promise<string | null> {
    try {
      const st = await stat(this.root.configured);
      if (!st.isDirectory()) return 'is no longer a directory';
      if (st.dev !== this.root.dev || st.ino !== this.root.ino) {
        return 'now refers to a different directory (unmounted, remounted, or replaced)';
      }
      return null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return 'was deleted or moved away';
      return `can no longer be read (${code ?? (err as Error).message})`;
    }
  }
}
