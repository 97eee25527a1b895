// What the agent has applied, kept on disk so a restarted agent can tell the
// master where it left off. Written atomically: a crash leaves the old or the
// new state, never half of one.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface AppliedState {
  /** the master run (session id) the seq belongs to */
  session: Uint8Array;
  seq: number;
}

export class AppliedStore {
  private readonly file: string;

  constructor(dir: string, node: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = join(dir, `${node}.applied.json`);
  }

  load(): AppliedState | null {
    try {
      const v = JSON.parse(readFileSync(this.file, 'utf8')) as { session?: unknown; seq?: unknown };
      if (typeof v.session !== 'string' || !/^[0-9a-f]{32}$/.test(v.session)) return null;
      if (typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq) || v.seq < 0) return null;
      return { session: new Uint8Array(Buffer.from(v.session, 'hex')), seq: v.seq };
    } catch {
      // Missing or unreadable state only costs a full sync.
      return null;
    }
  }

  save(state: AppliedState): void {
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify({ session: Buffer.from(state.session).toString('hex'), seq: state.seq }) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
  }
}
