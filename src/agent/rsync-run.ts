// Runs one rsync process. Output is kept bounded (the tail is what explains a
// failure), the password travels in the environment, never on the command line.
import { spawn, type ChildProcess } from 'node:child_process';

export interface RsyncOutcome {
  exit: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  /** set when rsync could not be started at all */
  spawnError?: string;
}

const KEEP = 64 * 1024;

function tail(chunks: Buffer[], size: number): string {
  const all = Buffer.concat(chunks);
  return all.subarray(Math.max(0, all.length - size)).toString('utf8');
}

/** Starts rsync runs and remembers the live ones, so their owner can stop them all. */
export class RsyncRunner {
  private readonly running = new Set<ChildProcess>();

  /** rsync processes still running */
  get live(): number {
    return this.running.size;
  }

  /** Kills every rsync this runner started (shutdown: no orphans). */
  killAll(sig: NodeJS.Signals = 'SIGTERM'): void {
    for (const child of this.running) child.kill(sig);
  }

  run(
    binary: string,
    args: string[],
    stdin: Buffer | null,
    password: string | null,
    onStdout?: (chunk: Buffer) => void,
  ): Promise<RsyncOutcome> {
    const running = this.running;
    const started = performance.now();
    return new Promise((resolve) => {
      const env = { ...process.env };
      // Only what this run is given: an operator's own settings must not
      // redirect the connection or replace the credentials.
      delete env.RSYNC_PASSWORD;
      delete env.RSYNC_CONNECT_PROG;
      if (password !== null) env.RSYNC_PASSWORD = password;
      let child: ChildProcess;
      try {
        child = spawn(binary, args, { env, stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
      } catch (err) {
        resolve({ exit: null, signal: null, stdout: '', stderr: '', durationMs: 0, spawnError: (err as Error).message });
        return;
      }
      running.add(child);
      const out: Buffer[] = [];
      const errs: Buffer[] = [];
      let outLen = 0;
      let errLen = 0;
      child.stdout!.on('data', (d: Buffer) => {
        onStdout?.(d);
        out.push(d);
        outLen += d.length;
        while (outLen > 2 * KEEP && out.length > 1) outLen -= out.shift()!.length;
      });
      child.stderr!.on('data', (d: Buffer) => {
        errs.push(d);
        errLen += d.length;
        while (errLen > 2 * KEEP && errs.length > 1) errLen -= errs.shift()!.length;
      });
      let spawnError: string | undefined;
      child.on('error', (err) => {
        spawnError = `cannot run ${binary}: ${err.message}`;
      });
      if (stdin && child.stdin) {
        child.stdin.on('error', () => undefined); // rsync may exit before reading it all
        child.stdin.end(stdin);
      }
      child.on('close', (code, signal) => {
        running.delete(child);
        resolve({
          exit: code,
          signal,
          stdout: tail(out, KEEP),
          stderr: tail(errs, 8 * 1024),
          durationMs: performance.now() - started,
          ...(spawnError ? { spawnError } : {}),
        });
      });
    });
  }
}

/** The command as an operator could paste it into a shell (for -p and logs). */
export function shellQuote(argv: string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
