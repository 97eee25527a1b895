// Process trees read from /proc: which processes a master or an agent started
// (an rsync daemon, rsync clients), so a test can kill exactly those and
// nothing else on the machine.
import { readdirSync, readFileSync } from 'node:fs';
import { sleep } from './wait.js';

export interface ProcInfo {
  pid: number;
  ppid: number;
  pgrp: number;
  /** one-letter state: R, S, D, Z... */
  state: string;
  argv: string[];
}

export function procInfo(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and ")".
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (argv[argv.length - 1] === '') argv.pop();
    return { pid, ppid: Number(f[1]), pgrp: Number(f[2]), state: f[0] ?? '?', argv };
  } catch {
    return null; // gone while we looked
  }
}

export function allProcs(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const p = procInfo(Number(e));
    if (p) out.push(p);
  }
  return out;
}

/** Every live (non-zombie) process below `pid`, parents before children. */
export function descendants(pid: number, procs: ProcInfo[] = allProcs()): ProcInfo[] {
  const out: ProcInfo[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift()!;
    for (const p of procs) {
      if (p.ppid !== parent || p.state === 'Z' || p.state === 'X') continue;
      out.push(p);
      queue.push(p.pid);
    }
  }
  return out;
}

export function isAlive(pid: number): boolean {
  const p = procInfo(pid);
  return p !== null && p.state !== 'Z' && p.state !== 'X';
}

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Kills `pid` and everything it started. The children are listed first: once
 * their parent is dead they are reparented and can no longer be found by it.
 */
export function killTree(pid: number, sig: NodeJS.Signals = 'SIGKILL'): number[] {
  const below = descendants(pid);
  signal(pid, sig);
  for (const p of below) signal(p.pid, sig);
  return [pid, ...below.map((p) => p.pid)];
}

/** The `rsync --daemon` a master supervises (a direct child in its own process group). */
export function rsyncDaemonOf(masterPid: number): ProcInfo | null {
  return descendants(masterPid).find((p) => p.ppid === masterPid && p.argv.includes('--daemon')) ?? null;
}

/** rsync clients an agent is running right now. */
export function rsyncClientsOf(agentPid: number): ProcInfo[] {
  return descendants(agentPid).filter((p) => /(^|\/)rsync$/.test(p.argv[0] ?? '') && !p.argv.includes('--daemon'));
}

export async function waitGone(pids: number[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive)) {
    if (Date.now() > deadline) throw new Error(`processes ${pids.filter(isAlive).join(', ')} still alive after ${timeoutMs} ms`);
    await sleep(20);
  }
}
