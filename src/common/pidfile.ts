// A pidfile that refuses a second daemon and survives a stale one.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync, constants } from 'node:fs';

export class PidfileError extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes our pid to `file`; throws if another live process holds it. Returns a remover. */
export function claimPidfile(file: string): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new PidfileError(`cannot write pidfile ${file}: ${(err as Error).message}`);
    }
    let pid = NaN;
    try {
      pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    } catch {
      // unreadable: treat as stale
    }
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new PidfileError(`already running as pid ${pid} (pidfile ${file}); stop it first`);
    }
    try {
      unlinkSync(file); // stale
    } catch {
      // raced with someone else; retry once
    }
  }
  throw new PidfileError(`cannot claim pidfile ${file}`);
}
