// Runs and supervises the rsync daemon agents pull from: writes its private
// runtime directory, starts `rsync --daemon --no-detach`, restarts it with
// backoff when it dies, and on stop leaves neither processes nor files behind.
import { EventEmitter } from 'node:events';
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { unbracket } from '../../common/sockets.js';
import { excludeFilePath, logFilePath, preXferFilePath, renderRsyncdConf, secretsFilePath, type RsyncdModule, type RsyncdUser } from '../../rsync/daemon-conf.js';
import { accepts, portProblem, probeHost } from './port-probe.js';
import { OWNER_FILE, orphanedDaemons, ownerFileText } from './proc-scan.js';
import { describeExit, groupGone, killGroup } from './process-group.js';
import { RestartBackoff } from './restart-backoff.js';
import { spawnRsyncd, type Spawned } from './process.js';

export interface RsyncDaemonTiming {
  /** how long the daemon may take to accept connections */
  startTimeoutMs: number;
  /** how long stop() waits after SIGTERM before SIGKILL */
  stopTimeoutMs: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** a daemon up this long is healthy again: the next restart waits backoffInitialMs */
  stableAfterMs: number;
}

export const DEFAULT_TIMING: RsyncDaemonTiming = {
  startTimeoutMs: 10_000,
  stopTimeoutMs: 5_000,
  backoffInitialMs: 100,
  backoffMaxMs: 5_000,
  stableAfterMs: 30_000,
};

export interface RsyncDaemonOptions {
  /** the rsync executable */
  binary: string;
  /** address to listen on (IPv4, IPv6 or a host name) */
  host: string;
  /** rsync cannot pick a free port itself (no port 0), so the caller chooses */
  port: number;
  modules: readonly RsyncdModule[];
  /** node name -> credential (as from makeCredentials), or a plain list */
  credentials: ReadonlyMap<string, RsyncdUser> | readonly RsyncdUser[];
  /** uid/gid transfers run as; default the master's own. Only root may pick others. */
  runAs?: { uid: number; gid: number };
  /**
   * The public port of the front (front.ts) that relays to this daemon.
   * Its own port is then a fresh one at every start, so a dead master's daemon
   * is found by the front port recorded in its owner file instead.
   */
  front?: number;
  /** the daemon's `max connections` per module; default daemon-conf.ts's */
  maxConnections?: number;
  /** parent of the private runtime directory; default the OS temp dir */
  runtimeDir?: string;
  timing?: Partial<RsyncDaemonTiming>;
}

export interface RsyncDaemonStatus {
  running: boolean;
  pid: number | null;
  restarts: number;
  lastError: string | null;
}

/** Payload of the 'orphan' event: a daemon left by a master that died, removed to free the port. */
export interface RsyncDaemonOrphan {
  pid: number;
  port: number;
  dir: string;
}

/** Payload of the 'exit' event: the daemon died without being asked to. */
export interface RsyncDaemonExit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  uptimeMs: number;
  /** the next attempt starts after this long */
  restartInMs: number;
  message: string;
}

const PROBE_INTERVAL_MS = 50;

/**
 * Events:
 * - 'log' (line: string): a line the daemon wrote (never contains passwords)
 * - 'exit' (info: RsyncDaemonExit): the daemon, or an attempt to restart it, died
 * - 'restarted' ({ pid, restarts }): a replacement daemon accepts connections
 * - 'orphan' (info: RsyncDaemonOrphan): a dead master's daemon held the port and was killed
 */
export class RsyncDaemon extends EventEmitter {
  private readonly timing: RsyncDaemonTiming;
  private readonly runAs: { uid: number; gid: number };
  private readonly privileged: boolean;
  private users: RsyncdUser[];
  private dir: string | null = null;
  /** the supervised daemon, once it accepted connections */
  private child: Spawned | null = null;
  /** a daemon being started, not yet accepting connections */
  private launching: Spawned | null = null;
  private active = false;
  private stopping = false;
  private restarts = 0;
  private lastError: string | null = null;
  private readonly backoff: RestartBackoff;
  private timer: NodeJS.Timeout | null = null;
  private readonly onProcessExit = (): void => this.killSync();

  constructor(private readonly opts: RsyncDaemonOptions) {
    super();
    this.timing = { ...DEFAULT_TIMING, ...opts.timing };
    this.backoff = new RestartBackoff(this.timing);
    this.users = [...(isMap(opts.credentials) ? opts.credentials.values() : opts.credentials)];
    const own = { uid: process.getuid?.() ?? -1, gid: process.getgid?.() ?? -1 };
    this.privileged = own.uid === 0;
    this.runAs = opts.runAs ?? own;
    if (!this.privileged && (this.runAs.uid !== own.uid || this.runAs.gid !== own.gid)) {
      throw new Error(
        `the rsync daemon can serve as uid ${this.runAs.uid}/gid ${this.runAs.gid} only when the master runs as root ` +
          `(it runs as uid ${own.uid}); run the master as root or leave runAs unset`,
      );
    }
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
      throw new Error(`rsync daemon port must be 1-65535, got ${String(opts.port)} (rsync cannot pick a free port itself)`);
    }
  }

  status(): RsyncDaemonStatus {
    return {
      running: this.child !== null,
      pid: this.child?.pid ?? null,
      restarts: this.restarts,
      lastError: this.lastError,
    };
  }

  /**
   * New credentials (a master reloading its nodes). The daemon reads its
   * config and secrets afresh for every connection, so it keeps running.
   */
  async setCredentials(credentials: ReadonlyMap<string, RsyncdUser> | readonly RsyncdUser[]): Promise<void> {
    this.users = [...(isMap(credentials) ? credentials.values() : credentials)];
    if (this.dir !== null) await this.writeFiles();
  }

  /** Resolves once the daemon accepts connections on host:port. */
  async start(): Promise<void> {
    if (this.active) throw new Error('the rsync daemon is already started; stop() it first');
    this.active = true;
    this.stopping = false;
    this.backoff.reset();
    process.on('exit', this.onProcessExit);
    try {
      // mkdtemp makes the directory 0700: nobody else may read the secrets,
      // nor swap the exclude files the daemon rereads on every connection.
      this.dir = await mkdtemp(join(this.opts.runtimeDir ?? tmpdir(), 'inosync-rsyncd-'));
      await chmod(this.dir, 0o700);
      await this.writeFiles();
      this.child = await this.launch();
    } catch (err) {
      this.lastError = messageOf(err);
      await this.teardown();
      throw err;
    }
  }

  /** SIGTERM, then SIGKILL after stopTimeoutMs; removes the runtime directory. */
  async stop(): Promise<void> {
    if (!this.active) return;
    this.stopping = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.teardown();
  }

  private async teardown(): Promise<void> {
    const procs = [this.child, this.launching].filter((s): s is Spawned => s !== null);
    this.child = null;
    await Promise.all(procs.map((s) => this.terminate(s)));
    if (this.dir !== null) await rm(this.dir, { recursive: true, force: true });
    this.dir = null;
    this.active = false;
    process.off('exit', this.onProcessExit);
  }

  /** Written at every (re)start, so a runtime dir removed by a temp cleaner comes back. */
  private async writeFiles(): Promise<void> {
    const dir = this.dir;
    if (dir === null) throw new Error('the rsync daemon was stopped while starting');
    const files = renderRsyncdConf({
      modules: this.opts.modules,
      users: this.users,
      runAs: this.runAs,
      dir,
      privileged: this.privileged,
      ...(this.opts.maxConnections !== undefined ? { maxConnections: Math.max(this.opts.maxConnections, 4 * this.users.length) } : {}),
    });
    await writePrivate(join(dir, OWNER_FILE), ownerFileText(process.pid, this.opts.front));
    await writePrivate(join(dir, 'rsyncd.conf'), files.conf);
    await writePrivate(secretsFilePath(dir), files.secrets);
    // Run by the daemon for every connection: it must never be missing or half written.
    await writePrivate(preXferFilePath(dir), files.preXfer, 0o700);
    for (const [name, content] of files.excludeFiles) await writePrivate(excludeFilePath(dir, name), content);
  }

  /** Spawns a daemon and waits until it accepts connections; kills it on failure. */
  private async launch(): Promise<Spawned> {
    const { host, port } = this.opts;
    if (this.stopping || this.dir === null) throw new Error('the rsync daemon was stopped while starting');
    // Behind a front nothing holds our port, but a dead master's daemon may still run.
    if (this.opts.front !== undefined) await this.reapOrphans();
    let problem = await portProblem(host, port);
    if (problem !== null && (await this.reapOrphans()) > 0) problem = await portProblem(host, port);
    if (problem !== null) throw new Error(problem);
    const s = await this.spawnDaemon();
    this.launching = s;
    try {
      await this.waitReady(s);
    } catch (err) {
      await this.terminate(s);
      throw err;
    } finally {
      this.launching = null;
    }
    void s.exited.then(() => this.onUnexpectedExit(s));
    return s;
  }

  /**
   * A master killed with SIGKILL (OOM killer, kill -9 without a cgroup to
   * sweep up) cannot stop its daemon, which is in a process group of its own:
   * it keeps the port, so every later start would fail. Such a daemon serves
   * credentials nobody holds any more; it is killed and its directory removed.
   */
  private async reapOrphans(): Promise<number> {
    const found = orphanedDaemons(this.opts.port, this.opts.front);
    for (const o of found) {
      killGroup(o.pid, 'SIGKILL');
      await groupGone(o.pid, this.timing.stopTimeoutMs);
      await rm(o.dir, { recursive: true, force: true });
      this.emit('orphan', { pid: o.pid, port: this.opts.port, dir: o.dir } satisfies RsyncDaemonOrphan);
    }
    return found.length;
  }

  private spawnDaemon(): Promise<Spawned> {
    const { binary, host, port } = this.opts;
    return spawnRsyncd({
      binary,
      args: [
        '--daemon',
        // Stay in the foreground as our child, so we see it die and can restart it.
        '--no-detach',
        `--config=${join(this.dir!, 'rsyncd.conf')}`,
        `--port=${port}`,
        `--address=${unbracket(host)}`,
      ],
      logFile: logFilePath(this.dir!),
      onLog: (text) => this.emit('log', text),
    });
  }

  private async waitReady(s: Spawned): Promise<void> {
    const { host, port } = this.opts;
    const deadline = Date.now() + this.timing.startTimeoutMs;
    for (;;) {
      if (this.stopping) throw new Error('the rsync daemon was stopped while starting');
      if (s.exit !== null) {
        throw new Error(
          `the rsync daemon for ${host}:${port} ${describeExit(s.exit)} while starting` +
            (s.tail.length > 0 ? `: ${s.tail.slice(-3).join(' | ')}` : '') +
            '; check that the port is free and the address belongs to this host',
        );
      }
      if (await accepts(probeHost(host), port)) {
        // A probe answered by some other listener would look the same, but
        // the port was free just before the spawn, and the daemon is still up.
        if (s.exit === null) return;
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`the rsync daemon did not accept connections on ${host}:${port} within ${this.timing.startTimeoutMs} ms`);
      }
      await sleep(PROBE_INTERVAL_MS);
    }
  }

  private onUnexpectedExit(s: Spawned): void {
    if (this.child !== s || this.stopping) return;
    this.child = null;
    // Connection children of the dead daemon would otherwise keep serving
    // under a supervisor that no longer tracks them.
    killGroup(s.pid, 'SIGKILL');
    const uptimeMs = Date.now() - s.startedAt;
    this.backoff.died(uptimeMs);
    const exit = s.exit ?? { code: null, signal: null };
    const last = s.tail.length > 0 ? `; last output: ${s.tail[s.tail.length - 1]}` : '';
    const message = `the rsync daemon (pid ${s.pid}) ${describeExit(exit)} after ${uptimeMs} ms${last}`;
    this.lastError = message;
    const info: RsyncDaemonExit = { pid: s.pid, code: exit.code, signal: exit.signal, uptimeMs, restartInMs: this.backoff.nextMs, message };
    this.emit('exit', info);
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const delay = this.backoff.take();
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.restart();
    }, delay);
  }

  private async restart(): Promise<void> {
    if (this.stopping || !this.active) return;
    try {
      await this.writeFiles();
      const s = await this.launch();
      if (this.stopping) {
        await this.terminate(s);
        return;
      }
      this.child = s;
      this.restarts++;
      this.emit('restarted', { pid: s.pid, restarts: this.restarts });
    } catch (err) {
      if (this.stopping) return;
      this.lastError = messageOf(err);
      const info: RsyncDaemonExit = { pid: -1, code: null, signal: null, uptimeMs: 0, restartInMs: this.backoff.nextMs, message: this.lastError };
      this.emit('exit', info);
      this.scheduleRestart();
    }
  }

  /** Ends the daemon and its connection children; resolves when they are gone. */
  private async terminate(s: Spawned): Promise<void> {
    killGroup(s.pid, 'SIGTERM');
    const gone = await Promise.race([s.exited.then(() => true), sleep(this.timing.stopTimeoutMs).then(() => false)]);
    if (!gone) killGroup(s.pid, 'SIGKILL');
    await s.exited;
    // A connection child may still be finishing its SIGTERM handler.
    if (!(await groupGone(s.pid, this.timing.stopTimeoutMs))) {
      killGroup(s.pid, 'SIGKILL');
      await groupGone(s.pid, this.timing.stopTimeoutMs);
    }
  }

  /** Last resort when the master exits without stop(): no daemon outlives it. */
  private killSync(): void {
    for (const s of [this.child, this.launching]) if (s !== null) killGroup(s.pid, 'SIGKILL');
    if (this.dir !== null) rmSync(this.dir, { recursive: true, force: true });
  }
}

function isMap(c: RsyncDaemonOptions['credentials']): c is ReadonlyMap<string, RsyncdUser> {
  return c instanceof Map;
}

/** Written under a temporary name and renamed: the daemon rereads these on every connection and must never see half a file. */
async function writePrivate(path: string, content: string, mode = 0o600): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
