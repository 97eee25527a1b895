// Small tools the security tests share: running a program to completion,
// reading the cluster's keys, scanning what the machine exposes.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadSecretKey } from '../src/common/keyfile.js';
import { parsePublicKey, parseSecretKeyFile } from '../src/protocol/keys.js';
import { signerFromSeed, type Signer } from '../src/protocol/sign.js';
import type { Cluster } from './cluster.js';

export const CLI = new URL('../src/cli/', import.meta.url).pathname;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string | Buffer } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined); // rsync may exit before reading it all
      child.stdin!.end(opts.input);
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** rsync as an outsider would run it: no terminal to prompt on, the password (if any) in the environment. */
export function rsync(args: string[], password: string | null = '', input?: string | Buffer): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  if (password !== null) env.RSYNC_PASSWORD = password;
  return run('rsync', ['--contimeout=10', '--timeout=20', ...args], { env, ...(input === undefined ? {} : { input }) });
}

export function keyFile(c: Cluster, who: 'master' | number): string {
  return join(c.dir, 'keys', who === 'master' ? 'master.key' : `agent${who}.key`);
}

export function signerOf(c: Cluster, who: 'master' | number): Signer {
  return loadSecretKey(keyFile(c, who));
}

/** The base64 line of a secret key file: what must never show up anywhere else. */
export function secretLine(c: Cluster, who: 'master' | number): string {
  const text = readFileSync(keyFile(c, who), 'utf8');
  parseSecretKeyFile(text);
  return text.split('\n').find((l) => l !== '' && !l.startsWith('#'))!.trim();
}

export function randomSigner(): Signer {
  return signerFromSeed(new Uint8Array(randomBytes(32)));
}

export function masterPub(c: Cluster): Uint8Array {
  return parsePublicKey(c.masterKeyPub);
}

export function agentPub(c: Cluster, i: number): Uint8Array {
  return parsePublicKey(c.agentKeyPubs[i]!);
}

export function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** Every regular file and symlink below `dir`, relative, sorted ('' if the directory is missing). */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string, rel: string): void => {
    let entries;
    try {
      entries = readdirSync(abs, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        out.push(r + '/');
        walk(join(abs, e.name), r);
      } else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}

/** The command lines of every process on this machine (what `ps` shows anyone). */
export function allCommandLines(): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      out.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Direct children of `pid`. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // The command name may contain spaces and parentheses; fields resume after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function cmdlineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

