// Reading /proc for the rsync daemon's supervisor: which processes are still
// alive in a process group, and which daemons a dead master left behind. The
// parsing and the decisions are pure; the two scans at the bottom read /proc.
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** In the daemon's runtime dir: the pid of the master supervising it, and the TLS front's port. */
export const OWNER_FILE = 'owner';

export function ownerFileText(pid: number, front: number | undefined): string {
  return `${pid}\n${front ?? ''}\n`;
}

/** The owner file's content; pid NaN when it is not a number. */
export function parseOwnerFile(text: string): { pid: number; front: string } {
  const [pidLine = '', frontLine = ''] = text.split('\n');
  return { pid: Number(pidLine), front: frontLine };
}

export interface ProcStat {
  /** R, S, D, Z (zombie), X (dead)... */
  state: string;
  ppid: number;
  pgrp: number;
}

/** /proc/PID/stat: "pid (comm) state ppid pgrp ...", where comm may contain spaces and ")". */
export function parseProcStat(text: string): ProcStat {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', ppid: Number(fields[1]), pgrp: Number(fields[2]) };
}

/** A process that exited but still shows in /proc (a zombie, or dying). */
export function isDead(stat: ProcStat): boolean {
  return stat.state === 'Z' || stat.state === 'X';
}

export interface DaemonCandidate {
  pid: number;
  argv: readonly string[];
  stat: ProcStat;
  /** the owner file next to its rsyncd.conf; null when missing */
  owner: string | null;
  /** the process's real uid (/proc/PID/status) */
  uid: number;
  /** its runtime dir as lstat sees it; null when missing */
  dir: { uid: number; mode: number; isDirectory: boolean } | null;
}

/** What a runtime dir made by daemon.ts looks like: a real directory, private to its owner. */
const RUNTIME_DIR_MODE = 0o700;

/**
 * The runtime dir of a daemon started by this code (runtime dir name, argv
 * shape) on `port`, or behind the TLS front on `front`, whose supervisor is
 * gone; null for any other process. Such a daemon is a group leader
 * (connection children are not) whose parent is no longer the pid in its
 * owner file. A daemon from before owner files counts only once init has
 * adopted it.
 *
 * Anyone can start a process whose command line names a live master's
 * runtime dir, and anyone can make a dir with the right name: only a process
 * of `ownUid` whose dir is a 0700 directory of `ownUid` is a candidate, so a
 * local user can neither make a root master delete its live runtime dir nor
 * kill something that is not its own.
 */
export function orphanDir(p: DaemonCandidate, port: number, front: number | undefined, ownUid: number): string | null {
  if (!p.argv.includes('--daemon')) return null;
  const conf = daemonConfigOf(p.argv);
  if (conf === null) return null;
  if (p.uid !== ownUid) return null;
  // A dir already removed (a temp cleaner) leaves a daemon of ours holding the port: still ours to kill.
  if (p.dir !== null && (!p.dir.isDirectory || p.dir.uid !== ownUid || (p.dir.mode & 0o7777) !== RUNTIME_DIR_MODE)) return null;
  if (p.stat.pgrp !== p.pid || p.stat.state === 'Z') return null;
  const owner = p.owner === null ? { pid: NaN, front: '' } : parseOwnerFile(p.owner);
  const mine = p.argv.includes(`--port=${port}`) || (front !== undefined && owner.front === String(front));
  if (!mine) return null;
  if (Number.isNaN(owner.pid) ? p.stat.ppid !== 1 : p.stat.ppid === owner.pid) return null;
  return dirname(conf);
}

/** The rsyncd.conf of a daemon this code started (in an inosync-rsyncd-* dir), or null. */
export function daemonConfigOf(argv: readonly string[]): string | null {
  const conf = argv.find((a) => a.startsWith('--config='))?.slice('--config='.length);
  if (conf === undefined || basename(conf) !== 'rsyncd.conf' || !/^inosync-rsyncd-[A-Za-z0-9]+$/.test(basename(dirname(conf)))) return null;
  return conf;
}

/** The real uid in /proc/PID/status ("Uid:\treal\teffective\tsaved\tfs"); NaN when absent. */
export function realUidOf(status: string): number {
  const m = /^Uid:\s+(\d+)/m.exec(status);
  return m ? Number(m[1]) : NaN;
}

function pids(): string[] | null {
  try {
    return readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return null;
  }
}

/** Live processes in group `pgid`; null when /proc cannot be read. */
export function liveGroupMembers(pgid: number): number | null {
  const all = pids();
  if (all === null) return null;
  let n = 0;
  for (const e of all) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const s = parseProcStat(stat);
    if (s.pgrp === pgid && !isDead(s)) n++;
  }
  return n;
}

/** Daemons a dead master left on `port` (or behind `front`): see orphanDir. */
export function orphanedDaemons(port: number, front: number | undefined): { pid: number; dir: string }[] {
  const out: { pid: number; dir: string }[] = [];
  for (const e of pids() ?? []) {
    let argv: string[];
    let stat: string;
    let status: string;
    try {
      argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      status = readFileSync(`/proc/${e}/status`, 'utf8');
    } catch {
      continue;
    }
    const conf = daemonConfigOf(argv);
    if (conf === null) continue;
    let dir: DaemonCandidate['dir'] = null;
    try {
      const st = lstatSync(dirname(conf));
      dir = { uid: st.uid, mode: st.mode, isDirectory: st.isDirectory() };
    } catch {
      // gone: nothing of ours to remove
    }
    let owner: string | null = null;
    try {
      owner = readFileSync(join(dirname(conf), OWNER_FILE), 'utf8');
    } catch {
      // an older master's daemon, or its directory was cleaned away
    }
    const pid = Number(e);
    const found = orphanDir({ pid, argv, stat: parseProcStat(stat), owner, uid: realUidOf(status), dir }, port, front, process.getuid?.() ?? -1);
    if (found !== null) out.push({ pid, dir: found });
  }
  return out;
}
