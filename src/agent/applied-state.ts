// What the agent has applied, kept on disk so a restarted agent can tell the
// master where it left off. Written atomically: a crash leaves the old or the
// new state, never half of one. The agent often runs as root, so nothing in
// the state directory is trusted to be what its name says: the directory
// must be the agent's own and closed to others, the temporary file is new
// (O_EXCL) under a name nobody could guess, and no link is followed.
import { closeSync, constants, fstatSync, fsyncSync, mkdirSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { stateDirSafetyProblem } from '../config/fs-checks.js';

export interface AppliedState {
  /** the master run (session id) the seq belongs to */
  session: Uint8Array;
  seq: number;
}

/** A state file is one short line; anything bigger is not ours. */
const MAX_STATE_BYTES = 4096;

export class AppliedStore {
  private readonly file: string;

  constructor(
    private readonly dir: string,
    node: string,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const problem = stateDirSafetyProblem(dir);
    if (problem !== null) throw new Error(`refusing the agent's state directory: ${problem}`);
    this.file = join(dir, `${node}.applied.json`);
  }

  load(): AppliedState | null {
    let fd: number;
    try {
      // NONBLOCK: a FIFO planted under the name must not hang the agent.
      fd = openSync(this.file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      // Missing, a link, or unreadable: that only costs a full sync.
      return null;
    }
    try {
      if (!fstatSync(fd).isFile()) return null;
      const buf = Buffer.alloc(MAX_STATE_BYTES);
      const n = readSync(fd, buf, 0, buf.length, 0);
      const v = JSON.parse(buf.subarray(0, n).toString('utf8')) as { session?: unknown; seq?: unknown };
      if (typeof v.session !== 'string' || !/^[0-9a-f]{32}$/.test(v.session)) return null;
      if (typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq) || v.seq < 0) return null;
      return { session: new Uint8Array(Buffer.from(v.session, 'hex')), seq: v.seq };
    } catch {
      return null;
    } finally {
      closeSync(fd);
    }
  }

  save(state: AppliedState): void {
    const tmp = `${this.file}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`;
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      try {
        writeSync(fd, JSON.stringify({ session: Buffer.from(state.session).toString('hex'), seq: state.seq }) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      // rename replaces a link planted under the final name, it does not follow it.
      renameSync(tmp, this.file);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // already renamed or gone
      }
      throw err;
    }
    this.syncDir();
  }

  /** The rename itself survives a crash only once the directory is on disk. */
  private syncDir(): void {
    let fd: number | null = null;
    try {
      fd = openSync(this.dir, constants.O_RDONLY | constants.O_DIRECTORY);
      fsyncSync(fd);
    } catch {
      // Some filesystems refuse fsync on a directory; the file itself is synced.
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }
}
