// Property test: on random trees and random pattern lists, the matcher must
// reach the same verdict as rsync itself, both as a client (--exclude) and as
// a daemon (`exclude from`, which rewrites some rules). Half of the daemon
// modules get their exclude file from the master's own renderer, which adds a
// "PATTERN/***" line per pattern. Every case derives from one seed; a failure
// prints it, and EXCLUDES_SEED=<seed> replays that case first.
// EXCLUDES_TREES raises the number of trees for a longer hunt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileExcludes, excludePatternProblem } from '../src/rsync/excludes.js';
import { ancestorsOf } from '../src/protocol/relpath.js';
import { renderRsyncdConf } from '../src/rsync/daemon-conf.js';
import { findFreePort } from '../harness/ports.js';
import { Rng } from '../harness/rng.js';

const RSYNC = 'rsync';
const TREES = Number(process.env.EXCLUDES_TREES ?? 40);
const DAEMON_TREES = Math.ceil(TREES / 4);
const LISTS_PER_TREE = 4;
const BASE_SEED = Number(process.env.EXCLUDES_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PARALLEL = 8;

// --- random trees --------------------------------------------------------------

interface Entry {
  rel: string;
  isDir: boolean;
}

// Letters dominate so that names repeat across the tree and patterns hit.
const NAME_CHARS = [...'aaabbbcA', '.', '-', ' ', '*', '?', '[', ']', '\\', '#', '!', ':', 'é', '日', '\n'];

function randomName(rng: Rng): string {
  for (;;) {
    let s = '';
    const len = 1 + rng.below(3);
    for (let i = 0; i < len; i++) s += rng.pick(NAME_CHARS);
    if (s !== '.' && s !== '..') return s;
  }
}

function randomTree(rng: Rng): Entry[] {
  let out: Entry[] = [];
  const grow = (dir: string, depth: number) => {
    const seen = new Set<string>();
    const n = depth === 0 ? 4 + rng.below(8) : rng.below(7);
    for (let i = 0; i < n && out.length < 120; i++) {
      const name = randomName(rng);
      if (seen.has(name)) continue;
      seen.add(name);
      const rel = dir === '' ? name : `${dir}/${name}`;
      const isDir = depth < 4 && rng.next() < 0.5;
      out.push({ rel, isDir });
      if (isDir) grow(rel, depth + 1);
    }
  };
  for (;;) {
    grow('', 0);
    if (out.length >= 3) return out;
    out = [];
  }
}

function writeTree(root: string, tree: readonly Entry[]): void {
  for (const e of tree) {
    if (e.isDir) mkdirSync(join(root, e.rel));
    else writeFileSync(join(root, e.rel), '');
  }
}

// --- random patterns -------------------------------------------------------------

const CLASSES = ['[ab]', '[!a]', '[^b]', '[a-c]', '[[:alpha:]]', '[[:punct:]]', '[]a]', '[*?]', '[\\]]', '[é]', '[-a]', '[[:]', '[a-]', '[\\\\]'];
const ESCAPES = ['\\*', '\\?', '\\[', '\\\\', '\\a', '\\]', '\\/'];

function escapeGlob(s: string): string {
  return s.replace(/[*?[\\]/g, (c) => '\\' + c);
}

function randomComponent(rng: Rng, names: readonly string[]): string {
  const r = rng.next();
  if (r < 0.05) return '**';
  if (r < 0.1) return '*';
  if (r < 0.4) return rng.pick(names);
  if (r < 0.5) return escapeGlob(rng.pick(names));
  let s = '';
  const pieces = 1 + rng.below(3);
  for (let i = 0; i < pieces; i++) {
    const k = rng.next();
    if (k < 0.3) s += rng.pick(NAME_CHARS.slice(0, 13));
    else if (k < 0.45) s += '*';
    else if (k < 0.55) s += '?';
    else if (k < 0.7) s += rng.pick(CLASSES);
    else if (k < 0.8) s += rng.pick(ESCAPES);
    else if (k < 0.95) s += rng.pick(names).slice(0, 2);
    else s += '**';
  }
  return s;
}

function randomPattern(rng: Rng, tree: readonly Entry[]): string {
  const names = tree.map((e) => e.rel.slice(e.rel.lastIndexOf('/') + 1));
  let body: string;
  if (rng.next() < 0.15) {
    const rel = rng.pick(tree).rel;
    body = rng.next() < 0.5 ? rel : escapeGlob(rel);
  } else {
    const comps: string[] = [];
    const n = 1 + (rng.next() < 0.4 ? 1 : 0) + (rng.next() < 0.15 ? 1 : 0);
    for (let i = 0; i < n; i++) comps.push(randomComponent(rng, names));
    body = comps.join('/');
  }
  const anchor = rng.next() < 0.25 ? '/' : '';
  const r = rng.next();
  const tail = r < 0.15 ? '/' : r < 0.25 ? '/***' : r < 0.3 ? '***' : r < 0.35 ? '**' : r < 0.4 ? '***/' : '';
  return anchor + body + tail;
}

function randomPatternList(rng: Rng, tree: readonly Entry[]): string[] {
  const out: string[] = [];
  const n = 1 + rng.below(3);
  while (out.length < n) {
    const p = randomPattern(rng, tree);
    if (excludePatternProblem(p) === null) out.push(p);
  }
  return out;
}

// --- rsync ---------------------------------------------------------------------

function run(args: readonly string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const opts = { encoding: 'buffer' as const, maxBuffer: 1 << 24, env: { ...process.env, LC_ALL: 'C' } };
    execFile(RSYNC, args, opts, (err, stdout, stderr) => {
      if (err) reject(new Error(`rsync ${JSON.stringify(args)} failed: ${err.message}\n${stderr.toString()}`));
      else resolve(stdout);
    });
  });
}

/**
 * With -8, rsync's output escapes only control bytes, as \#ooo, and escapes
 * a backslash that could be read as such an escape; undoing that recovers
 * every name exactly, newlines included.
 */
function parseNames(out: Buffer): Set<string> {
  const names = new Set<string>();
  let line: number[] = [];
  for (let i = 0; i < out.length; i++) {
    const b = out[i]!;
    if (b === 0x0a) {
      const name = Buffer.from(line).toString('utf8').replace(/\/$/, '');
      if (name !== '.') names.add(name);
      line = [];
    } else if (b === 0x5c && out[i + 1] === 0x23 && /^[0-7]{3}$/.test(out.subarray(i + 2, i + 5).toString('latin1'))) {
      line.push(parseInt(out.subarray(i + 2, i + 5).toString('latin1'), 8));
      i += 4;
    } else {
      line.push(b);
    }
  }
  return names;
}

const LIST_ARGS = ['-a', '-8', '--dry-run', '--out-format=%n'];

interface Daemon {
  port: number;
  stop(): Promise<void>;
}

/**
 * A daemon exclude file: "- PATTERN" lines, so that rsync takes each pattern
 * verbatim (a bare line could be a comment, a "+ " include or a "!" clear),
 * or whatever the master's renderer makes of the list.
 */
function excludeFileContent(patterns: readonly string[], renderer: boolean): string {
  if (!renderer) return patterns.map((p) => `- ${p}\n`).join('');
  const modules = [{ name: 'm', path: '/', excludes: patterns }];
  const spec = { modules, users: [{ user: 'u', password: 'p' }], runAs: { uid: 0, gid: 0 }, dir: '/' };
  return renderRsyncdConf(spec).excludeFiles.get('m')!;
}

/** One rsync daemon with a module per job, each reading its patterns through `exclude from`. */
async function startDaemon(work: string, jobs: readonly Job[]): Promise<Daemon> {
  const ids = process.getuid && process.getgid ? `uid = ${process.getuid()}\ngid = ${process.getgid()}\n` : '';
  let conf = `use chroot = no\nreverse lookup = no\nlog file = ${join(work, 'rsyncd.log')}\n${ids}`;
  for (const j of jobs) {
    const excludeFile = join(work, `${j.module}.exclude`);
    writeFileSync(excludeFile, excludeFileContent(j.patterns, j.renderer));
    conf += `[${j.module}]\npath = ${j.src}\nread only = yes\nexclude from = ${excludeFile}\n`;
  }
  const confFile = join(work, 'rsyncd.conf');
  writeFileSync(confFile, conf);
  const port = await findFreePort();
  const child = spawn(RSYNC, ['--daemon', '--no-detach', `--config=${confFile}`, `--port=${port}`, '--address=127.0.0.1'], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill();
    await exited;
  };
  for (let tries = 0; ; tries++) {
    if (await canConnect(port)) return { port, stop };
    if (child.exitCode !== null || tries > 100) {
      await stop();
      throw new Error(`rsync daemon on port ${port} did not start`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

// --- the comparison -------------------------------------------------------------

interface Case {
  seed: number;
  tree: Entry[];
  lists: string[][];
}

interface Job {
  c: Case;
  src: string;
  patterns: string[];
  module: string;
  /** daemon only: exclude file from the master's renderer */
  renderer: boolean;
}

function makeCase(seed: number): Case {
  const rng = new Rng(seed);
  const tree = randomTree(rng);
  const lists = Array.from({ length: LISTS_PER_TREE }, () => randomPatternList(rng, tree));
  return { seed, tree, lists };
}

function firstDisagreement(c: Case, patterns: readonly string[], transferred: Set<string>, how: string): string | null {
  const m = compileExcludes(patterns);
  const where = `seed ${c.seed} (rerun with EXCLUDES_SEED=${c.seed}), ${how}, patterns ${JSON.stringify(patterns)}`;
  for (const e of c.tree) {
    const ours = m.isExcluded(e.rel, e.isDir);
    const theirs = !transferred.has(e.rel);
    if (ours !== theirs) {
      const verdict = `rsync ${theirs ? 'excludes' : 'transfers'} it, the matcher says ${ours ? 'excluded' : 'not excluded'}`;
      return `${where}:\n  ${e.isDir ? 'dir ' : 'file'} ${JSON.stringify(e.rel)}: ${verdict}`;
    }
    // isExcluded must be matchesSelf over the path and its ancestors.
    const viaSelf = m.matchesSelf(e.rel, e.isDir) || ancestorsOf(e.rel).some((a) => m.matchesSelf(a, true));
    if (viaSelf !== ours) return `${where}:\n  matchesSelf disagrees with isExcluded on ${JSON.stringify(e.rel)}`;
  }
  for (const name of transferred) {
    if (!c.tree.some((e) => e.rel === name)) return `${where}:\n  rsync listed ${JSON.stringify(name)}, which is not in the tree`;
  }
  return null;
}

async function inPool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

async function compareAll(mode: 'client' | 'daemon', trees: number): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'inosync-excludes-'));
  let daemon: Daemon | undefined;
  try {
    const jobs: Job[] = [];
    for (let i = 0; i < trees; i++) {
      const c = makeCase(BASE_SEED + i);
      const src = join(work, `src${i}`);
      mkdirSync(src);
      writeTree(src, c.tree);
      c.lists.forEach((patterns, k) => jobs.push({ c, src, patterns, module: `m${i}_${k}`, renderer: k % 2 === 1 }));
    }
    const dst = join(work, 'dst'); // stays empty: every run is a dry run
    mkdirSync(dst);
    if (mode === 'daemon') daemon = await startDaemon(work, jobs);

    const failures: { i: number; msg: string }[] = [];
    await inPool(jobs, PARALLEL, async (job, i) => {
      if (failures.length > 0) return;
      const from = daemon
        ? [`rsync://127.0.0.1:${daemon.port}/${job.module}/`]
        : [...job.patterns.map((p) => `--exclude=${p}`), job.src + '/'];
      const transferred = parseNames(await run([...LIST_ARGS, ...from, dst + '/']));
      const how = !daemon ? 'rsync --exclude' : `rsync daemon "exclude from" (${job.renderer ? "the master's renderer" : '"- PATTERN" lines'})`;
      const msg = firstDisagreement(job.c, job.patterns, transferred, how);
      if (msg) failures.push({ i, msg });
    });
    failures.sort((a, b) => a.i - b.i);
    if (failures[0]) assert.fail(failures[0].msg);
  } finally {
    await daemon?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

test(`matcher agrees with rsync --exclude (${TREES} trees x ${LISTS_PER_TREE} lists, base seed ${BASE_SEED})`, async () => {
  await compareAll('client', TREES);
});

test(`matcher agrees with an rsync daemon's "exclude from" (${DAEMON_TREES} trees x ${LISTS_PER_TREE} lists, base seed ${BASE_SEED})`, async () => {
  await compareAll('daemon', DAEMON_TREES);
});
