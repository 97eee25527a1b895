// Measures what a watcher backend costs on a tree of a given size: time to
// ready, resident memory, inotify watches, and single-event latency. Prints
// one JSON line; the benchmark runs it once per backend, in a fresh process
// each, so the memory of one backend does not count against the other.
//
// usage: node dist/scripts/watch-scale.js <inotify|chokidar|parcel> <files> <dirs>

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWatcher } from '../src/master/watcher/index.js';
import { countInotifyWatches } from '../src/master/watcher/inotify-watches.js';
import type { BackendName, WatchEvent, WatchProblem } from '../src/master/watcher/types.js';

const FANOUT = 16;
const LATENCY_SAMPLES = 5;

function usage(why: string): never {
  process.stderr.write(`${why}\nusage: watch-scale <inotify|chokidar|parcel> <files> <dirs>\n`);
  process.exit(2);
}

function parseArgs(): { backend: BackendName; files: number; dirs: number } {
  const [backend, files, dirs] = process.argv.slice(2);
  if (backend !== 'inotify' && backend !== 'chokidar' && backend !== 'parcel') usage(`unknown backend "${backend ?? ''}"`);
  const n = Number(files);
  const m = Number(dirs);
  if (!Number.isInteger(n) || n < 0) usage(`files must be a whole number, got "${files ?? ''}"`);
  if (!Number.isInteger(m) || m < 1) usage(`dirs must be a whole number >= 1, got "${dirs ?? ''}"`);
  return { backend, files: n, dirs: m };
}

/** A balanced tree of `dirs` directories, `files` empty files spread evenly. */
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

const mb = (bytes: number): number => Math.round(bytes / 1048576);

async function main(): Promise<void> {
  const { backend, files, dirs } = parseArgs();
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
      await new Promise((r) => setTimeout(r, 100));
    }
    latencies.sort((a, b) => a - b);
    await watcher.close();

    const result = {
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
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`watch-scale failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
