// watch scale: time to ready and RSS of each watcher backend on a tree of
// 100,000 files in 5,000 directories, each measured by this same file run as a
// child (one fresh process per backend, so the memory of one backend does not
// count against the other). Baselines from the same run: a plain recursive
// readdir of the same tree shape (the least any watcher must do to start)
// and the RSS of the child before its watcher started.
// Then 1,000,000 files with inotify (the default) and parcel (not with
// --quick): measured with --million, else extrapolated from 300,000.
//
// The child alone: node dist/scripts/bench/watch-scale.js <inotify|chokidar|parcel> <files> <dirs>
// prints one JSON line: time to ready, resident memory, inotify watches and
// single-event latency.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWatcher } from '../../src/master/watcher/index.js';
import { countInotifyWatches } from '../../src/master/watcher/inotify-watches.js';
import type { BackendName, WatchEvent, WatchProblem } from '../../src/master/watcher/types.js';
import { sleep } from '../../harness/wait.js';
// Types only: the child must not load the bench's machinery (its RSS is measured).
import type { Ctx, Row, WorkloadResult } from './lib.js';

const SELF = new URL(import.meta.url).pathname;
const FANOUT = 16;
const LATENCY_SAMPLES = 5;

interface ScaleResult {
  backend: string;
  files: number;
  dirs: number;
  readyMs: number;
  rssMB: number;
  watches: number | null;
  rssBaseMB: number;
  latencyMs: number;
  problems: string[];
}

async function scale(backend: string, files: number, dirs: number): Promise<ScaleResult & { wallMs: number }> {
  const { run } = await import('./lib.js');
  const out = await run(process.execPath, [SELF, backend, String(files), String(dirs)]);
  if (out.code !== 0) throw new Error(`watch-scale ${backend} ${files} ${dirs} failed: ${out.stderr.trim()}`);
  return { ...(JSON.parse(out.stdout.trim().split('\n').pop()!) as ScaleResult), wallMs: out.ms };
}

/** A balanced tree of `dirs` directories, `files` empty files spread evenly; returns the directories. */
function buildTree(root: string, files: number, dirs: number): string[] {
  const paths: string[] = [];
  for (let i = 0; i < dirs; i++) {
    const parent = i < FANOUT ? root : paths[Math.floor(i / FANOUT) - 1]!;
    const dir = join(parent, `d${i}`);
    mkdirSync(dir);
    paths.push(dir);
  }
  for (let j = 0; j < files; j++) writeFileSync(join(paths[j % dirs]!, `f${j}`), '');
  return paths;
}

/** The tree the child watches, walked with readdir: ms to list every directory. */
function walkBaseline(files: number, dirs: number): number {
  const root = mkdtempSync(join(tmpdir(), 'inosync-bench-walk-'));
  try {
    buildTree(root, files, dirs);
    const t0 = performance.now();
    let entries = 0;
    const stack = [root];
    while (stack.length > 0) {
      const d = stack.pop()!;
      for (const e of readdirSync(d, { withFileTypes: true })) {
        entries++;
        if (e.isDirectory()) stack.push(join(d, e.name));
      }
    }
    const ms = performance.now() - t0;
    if (entries !== files + dirs) throw new Error(`walk found ${entries} entries, expected ${files + dirs}`);
    return ms;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export async function watchScale(ctx: Ctx): Promise<WorkloadResult> {
  const { limitRow, round } = await import('./lib.js');
  const files = ctx.quick ? 20_000 : 100_000;
  const dirs = files / 20;
  const rows: Row[] = [];
  const notes: string[] = [];
  const data: Record<string, unknown> = {};
  const walkMs = walkBaseline(files, dirs);
  data.walkMs = round(walkMs);
  for (const backend of ['inotify', 'parcel', 'chokidar']) {
    const r = await scale(backend, files, dirs);
    ctx.log(`  ${backend}: ready ${r.readyMs} ms, ${r.rssMB} MB, ${r.watches} watches`);
    data[backend] = r;
    rows.push(
      limitRow('watch-scale', `${backend}: ready, ${files / 1000}k files / ${dirs} dirs`, r.readyMs / 1000, 's', 3, '<', {
        value: walkMs / 1000,
        what: 'readdir walk of the tree',
      }),
      limitRow('watch-scale', `${backend}: RSS when ready`, r.rssMB, 'MB', 200, '<', { value: r.rssBaseMB, what: 'same process before watching' }),
    );
    if (r.problems.length > 0) notes.push(`${backend} reported problems: ${r.problems.join(', ')}`);
  }
  if (!ctx.quick) {
    // A million files, inotify and parcel: chokidar needs a watch per file
    // and directory (1.05M), beyond fs.inotify.max_user_watches here.
    const ch = data.chokidar as ScaleResult;
    const perK = (ch.rssMB - ch.rssBaseMB) / (files / 1000);
    notes.push(
      `1M files: inotify and parcel only; chokidar needs one inotify watch per file and directory (1.05M; fs.inotify.max_user_watches is ${maxWatches()} here) ` +
        `and, at the ${round(perK, 1)} MB per 1,000 files measured above, about ${round((perK * 1000) / 1024, 1)} GB`,
    );
    for (const backend of ['inotify', 'parcel']) {
      const r100 = data[backend] as ScaleResult;
      if (ctx.million) {
        const t0 = performance.now();
        const r = await scale(backend, 1_000_000, 50_000);
        ctx.log(`  ${backend} 1M: ready ${r.readyMs} ms, ${r.rssMB} MB, ${r.watches} watches (${round((performance.now() - t0) / 1000)} s with tree building)`);
        data[`${backend}1M`] = r;
        rows.push(
          limitRow('watch-scale', `${backend}: RSS when ready, 1M files / 50k dirs`, r.rssMB, 'MB', 1024, '<', { value: r.rssBaseMB, what: 'same process before watching' }),
          limitRow('watch-scale', `${backend}: ready, 1M files / 50k dirs`, r.readyMs / 1000, 's', undefined),
        );
        if (r.problems.length > 0) notes.push(`${backend} at 1M files reported problems: ${r.problems.join(', ')}`);
      } else {
        // Building and removing a million files takes ~10 minutes on this
        // machine (2 cores, shared): 300,000 are measured, and the RSS grown per
        // file between 100k and 300k carries the line to 1M.
        const t0 = performance.now();
        const r = await scale(backend, 300_000, 15_000);
        ctx.log(`  ${backend} 300k: ready ${r.readyMs} ms, ${r.rssMB} MB (${round((performance.now() - t0) / 1000)} s with tree building)`);
        data[`${backend}300k`] = r;
        const slope = (r.rssMB - r100.rssMB) / 200_000;
        const est = r.rssMB + slope * 700_000;
        const estReady = (r.readyMs / 300_000) * 1_000_000;
        data[`${backend}1MExtrapolated`] = { rssMB: round(est), readyMs: round(estReady), mbPerMillionFiles: round(slope * 1e6) };
        rows.push(
          limitRow('watch-scale', `${backend}: RSS when ready, 300k files / 15k dirs`, r.rssMB, 'MB', undefined, '<', { value: r.rssBaseMB, what: 'same process before watching' }),
          limitRow('watch-scale', `${backend}: RSS at 1M files, EXTRAPOLATED from 100k/300k`, est, 'MB', 1024, '<'),
          limitRow('watch-scale', `${backend}: ready at 1M files, EXTRAPOLATED (linear)`, estReady / 1000, 's', undefined),
        );
        if (r.problems.length > 0) notes.push(`${backend} at 300k files reported problems: ${r.problems.join(', ')}`);
      }
    }
    if (!ctx.million) notes.push('1M figures are extrapolated (linear in files from the 100k and 300k runs), not measured; `--million` measures them (a few minutes more: tree building dominates)');
  }
  notes.push(`scripts/bench/watch-scale.ts as a child, one fresh process per backend, tree built in the same process just before (warm page cache); the walk baseline is a readdir of an identical tree`);
  return { name: 'watch-scale', rows, notes, data };
}

function maxWatches(): string {
  try {
    return readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

// --- the child: one backend, one tree -------------------------------------------

function usage(why: string): never {
  process.stderr.write(`${why}\nusage: watch-scale <inotify|chokidar|parcel> <files> <dirs>\n`);
  process.exit(2);
}

function childArgs(argv: string[]): { backend: BackendName; files: number; dirs: number } {
  const [backend, files, dirs] = argv;
  if (backend !== 'inotify' && backend !== 'chokidar' && backend !== 'parcel') usage(`unknown backend "${backend ?? ''}"`);
  const n = Number(files);
  const m = Number(dirs);
  if (!Number.isInteger(n) || n < 0) usage(`files must be a whole number, got "${files ?? ''}"`);
  if (!Number.isInteger(m) || m < 1) usage(`dirs must be a whole number >= 1, got "${dirs ?? ''}"`);
  return { backend, files: n, dirs: m };
}

const mb = (bytes: number): number => Math.round(bytes / 1048576);

async function measure(backend: BackendName, files: number, dirs: number): Promise<ScaleResult> {
  const root = mkdtempSync(join(tmpdir(), `inosync-scale-${backend}-`));
  try {
    const dirPaths = buildTree(root, files, dirs);
    const rssBaseMB = mb(process.memoryUsage().rss);
    const problems: WatchProblem[] = [];
    let onEvent: ((e: WatchEvent) => void) | undefined;

    const t0 = performance.now();
    const watcher = await startWatcher(backend, {
      root,
      ignore: () => false,
      onEvents: (events) => events.forEach((e) => onEvent?.(e)),
      onProblem: (p) => problems.push(p),
    });
    const readyMs = Math.round(performance.now() - t0);
    const rssMB = mb(process.memoryUsage().rss);
    const watches = countInotifyWatches() ?? null;

    const latencies: number[] = [];
    const deepest = dirPaths[dirPaths.length - 1]!;
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const name = `latency-probe-${i}`;
      const rel = join(deepest, name).slice(root.length + 1);
      // The timer also keeps the process alive: the inotify backend's
      // fs.watch handles are not persistent (the master's sockets are what
      // keep it running), and an empty event loop would end this process
      // silently while it waits.
      const seen = new Promise<number>((resolve, reject) => {
        const timeout = setTimeout(() => reject(new Error(`no event for ${rel} within 30 s`)), 30_000);
        onEvent = (e) => {
          if (e.path !== rel) return;
          clearTimeout(timeout);
          resolve(performance.now());
        };
      });
      const start = performance.now();
      writeFileSync(join(deepest, name), '');
      latencies.push((await seen) - start);
      await sleep(100);
    }
    latencies.sort((a, b) => a - b);
    await watcher.close();
    return {
      backend,
      files,
      dirs,
      readyMs,
      rssMB,
      watches,
      rssBaseMB,
      latencyMs: Math.round(latencies[Math.floor(latencies.length / 2)]! * 10) / 10,
      problems: problems.map((p) => p.kind),
    };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (process.argv[1] === SELF) {
  const { backend, files, dirs } = childArgs(process.argv.slice(2));
  measure(backend, files, dirs).then(
    (result) => process.stdout.write(JSON.stringify(result) + '\n'),
    (err: unknown) => {
      process.stderr.write(`watch-scale failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
