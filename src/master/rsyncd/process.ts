// One rsync daemon process: spawned in a process group of its own with a bare
// environment, its log file and output followed, its last lines kept to say
// why it died.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { daemonLogText, LogTail, splitLines } from './log-tail.js';

/** daemon lines kept to explain its death */
const TAIL_LINES = 20;

/** One spawned daemon process and what it said. */
export interface Spawned {
  proc: ChildProcess;
  pid: number;
  startedAt: number;
  /** its last lines, oldest first */
  tail: string[];
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** resolves once it exited and its last log lines were read */
  exited: Promise<void>;
}

export interface SpawnRsyncd {
  binary: string;
  args: readonly string[];
  /** the `log file` of its rsyncd.conf, followed from its current end */
  logFile: string;
  /** every non-empty line it says, without rsync's timestamp */
  onLog: (text: string) => void;
}

/** Why the rsync binary could not be started, as an operator can act on it. */
export function spawnErrorMessage(binary: string, err: { code?: string; message: string }): string {
  if (err.code === 'ENOENT') return `rsync binary "${binary}" not found: install rsync or set rsync.binary to its path`;
  if (err.code === 'EACCES') return `rsync binary "${binary}" is not executable: check its permissions or set rsync.binary`;
  return `could not start the rsync daemon "${binary}": ${err.message}`;
}

/** Where util-linux's setpriv may be; it is on every Debian and most other systems. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'];

function executable(path: string): NodeJS.ErrnoException | null {
  try {
    accessSync(path, constants.X_OK);
    return null;
  } catch (err) {
    return err as NodeJS.ErrnoException;
  }
}

/**
 * The command that runs `binary` so that the kernel kills it when the master
 * dies, even by SIGKILL: `setpriv --pdeathsig SIGKILL` execs it in place
 * (same pid, same argv in /proc), with the parent-death signal set. Its
 * connection children do not inherit the signal, but every client reaches
 * them through the master's front, whose sockets close with the master, so
 * they end too. Without setpriv the orphan reaper (proc-scan.ts) is the only
 * line. The binary is resolved here so that a missing one still fails the
 * spawn with ENOENT rather than as setpriv's exit code.
 */
export function parentDeathCommand(binary: string, args: readonly string[], path: string, setpriv: string | null = findSetpriv()): { file: string; args: string[] } | { error: NodeJS.ErrnoException } {
  if (setpriv === null) return { file: binary, args: [...args] };
  let resolved: string | null = null;
  let error: NodeJS.ErrnoException | null = null;
  for (const dir of binary.includes('/') ? [''] : path.split(delimiter).filter(Boolean)) {
    const candidate = dir === '' ? binary : join(dir, binary);
    const e = executable(candidate);
    if (e === null) {
      resolved = candidate;
      break;
    }
    if (error === null || e.code !== 'ENOENT') error = e;
  }
  if (resolved === null) return { error: error ?? Object.assign(new Error(`${binary} not found`), { code: 'ENOENT' }) };
  return { file: setpriv, args: ['--pdeathsig', 'SIGKILL', '--', resolved, ...args] };
}

let setprivFound: string | null | undefined;
function findSetpriv(): string | null {
  setprivFound ??= SETPRIV.find((p) => executable(p) === null) ?? null;
  return setprivFound;
}

/** Resolves once the process runs (not yet accepting connections); rejects when it cannot be started. */
export async function spawnRsyncd(o: SpawnRsyncd): Promise<Spawned> {
  const PATH = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  const cmd = parentDeathCommand(o.binary, o.args, PATH);
  if ('error' in cmd) throw new Error(spawnErrorMessage(o.binary, cmd.error));
  const tail: string[] = [];
  const onLine = (line: string): void => {
    const text = daemonLogText(line);
    if (text === '') return;
    tail.push(text);
    if (tail.length > TAIL_LINES) tail.shift();
    o.onLog(text);
  };
  const log = await LogTail.open(o.logFile, onLine);
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd.file, cmd.args, {
      // Its own process group: stop() signals the daemon and every
      // per-connection child it forked in one go.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Only what the daemon needs: nothing of the master's environment
      // should reach it (rsyncd.conf expands %VAR% references, RSYNC_*
      // variables change its behaviour).
      env: { PATH, ...(process.env.TZ ? { TZ: process.env.TZ } : {}) },
    });
    const s: Spawned = { proc, pid: -1, startedAt: Date.now(), tail, exit: null, exited: Promise.resolve() };
    s.exited = new Promise<void>((done) => {
      proc.once('exit', (code, signal) => {
        // Its last words (e.g. why it could not bind) are read before anyone hears it died.
        void log.close().then(() => {
          s.exit = { code, signal };
          done();
        });
      });
    });
    // Errors from before the log file is open (config, bind) come on stdout/stderr.
    splitLines(proc.stdout!, onLine);
    splitLines(proc.stderr!, onLine);
    proc.once('error', (err: NodeJS.ErrnoException) => {
      void log.close();
      reject(new Error(spawnErrorMessage(o.binary, err)));
    });
    proc.once('spawn', () => {
      s.pid = proc.pid!;
      resolve(s);
    });
  });
}
