// Running as a daemon: -d forks to the background (Node cannot fork, so it
// re-executes itself detached and waits for the child to report it is up),
// pidfile, signals, and systemd readiness.
import { spawn, spawnSync } from 'node:child_process';
import { openSync } from 'node:fs';
import { resolve } from 'node:path';
import { claimPidfile } from './pidfile.js';
import type { Logger } from './log.js';

const CHILD_ENV = 'INOSYNC_DAEMON_CHILD';

export interface DaemonFlags {
  daemonize: boolean;
  pidfile?: string;
  logFile?: string;
}

/** In the parent of `-d`: start the detached child and wait until it is up. Returns the exit code. */
export async function forkToBackground(flags: DaemonFlags): Promise<number> {
  const args = process.argv.slice(1).filter((a) => a !== '-d' && a !== '--daemonize');
  const out = flags.logFile ? openSync(resolve(flags.logFile), 'a') : 'ignore';
  const child = spawn(process.execPath, [...process.execArgv, ...args], {
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
    env: { ...process.env, [CHILD_ENV]: '1' },
  });
  return await new Promise<number>((done) => {
    const timer = setTimeout(() => {
      process.stderr.write('daemon did not report ready within 60 s; check its log\n');
      done(1);
    }, 60_000);
    child.on('message', (m: unknown) => {
      const msg = m as { ready?: boolean; error?: string };
      clearTimeout(timer);
      if (msg.error) {
        process.stderr.write(`${msg.error}\n`);
        done(1);
      } else {
        child.disconnect();
        child.unref();
        done(0);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      done(code === 0 ? 1 : (code ?? 1));
    });
  });
}

export function isDaemonChild(): boolean {
  return process.env[CHILD_ENV] === '1';
}

/** Tell whoever waits (the -d parent, systemd) that we are up. */
export function reportReady(log: Logger): void {
  if (process.send) {
    process.send({ ready: true });
    process.disconnect?.();
  }
  if (process.env.NOTIFY_SOCKET) {
    const r = spawnSync('systemd-notify', ['--ready', `--pid=${process.pid}`], { stdio: 'ignore' });
    if (r.status !== 0) log.warn('systemd-notify failed; is NotifyAccess=all set in the unit?');
  }
}

export function reportStartupError(message: string): void {
  if (process.send) process.send({ error: message });
}

/** Claims the pidfile (if any) and wires SIGTERM/SIGINT to a clean stop. */
export function runAsDaemon(flags: DaemonFlags, log: Logger, stop: () => Promise<void>): void {
  const release = flags.pidfile ? claimPidfile(resolve(flags.pidfile)) : () => undefined;
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal: sig });
    const force = setTimeout(() => {
      log.error('clean stop took over 20 s; exiting anyway');
      release();
      process.exit(1);
    }, 20_000);
    force.unref();
    stop()
      .catch((err: unknown) => log.error('error while stopping', { err }))
      .finally(() => {
        release();
        process.exit(0);
      });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('exit', release);
}
