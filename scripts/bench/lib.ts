// Shared machinery for `npm run bench`: results, timing, a bare rsync daemon
// for baselines, process sampling from /proc, cheap tree comparison.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, copyFileSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../../harness/cluster.js';
import { sleep, waitFor } from '../../harness/wait.js';
import { findFreePort } from '../../harness/ports.js';
import { assertTreesEqual, snapshotTree } from '../../harness/tree.js';

// --- results ----------------------------------------------------------------

export interface Row {
  workload: string;
  metric: string;
  value: number;
  unit: string;
  /** what the baseline is, in a few words */
  baselineWhat?: string;
  baseline?: number;
  /** value / baseline */
  ratio?: number;
  /** e.g. "<= 2x" or "< 300 MB"; absent: information only */
  target?: string;
  met?: boolean;
}

export interface WorkloadResult {
  name: string;
  rows: Row[];
  notes: string[];
  /** anything else worth keeping in the JSON */
  data: Record<string, unknown>;
  /** wall time of the workload, s */
  seconds?: number;
  error?: string;
}

export interface Ctx {
  quick: boolean;
  /** --million: watch 1,000,000 files for real instead of 300,000 extrapolated */
  million: boolean;
  log: (msg: string) => void;
}

export const round = (n: number, digits = 1): number => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};

/** A row compared with a baseline: ratio = value / baseline, met when ratio <= maxRatio. */
export function ratioRow(
  workload: string,
  metric: string,
  value: number,
  unit: string,
  baseline: number,
  baselineWhat: string,
  maxRatio?: number,
): Row {
  const ratio = baseline > 0 ? value / baseline : Number.POSITIVE_INFINITY;
  const row: Row = { workload, metric, value: round(value, 2), unit, baseline: round(baseline, 2), baselineWhat, ratio: round(ratio, 2) };
  if (maxRatio !== undefined) {
    row.target = `<= ${maxRatio}x`;
    row.met = ratio <= maxRatio;
  }
  return row;
}

/** A row against an absolute limit (value < limit), with an optional baseline for context. */
export function limitRow(
  workload: string,
  metric: string,
  value: number,
  unit: string,
  limit: number | undefined,
  cmp: '<' | '<=' = '<',
  baseline?: { value: number; what: string },
): Row {
  const row: Row = { workload, metric, value: round(value, 2), unit };
  if (baseline) {
    row.baseline = round(baseline.value, 2);
    row.baselineWhat = baseline.what;
    row.ratio = baseline.value > 0 ? round(value / baseline.value, 2) : undefined;
  }
  if (limit !== undefined) {
    row.target = `${cmp} ${limit} ${unit}`;
    row.met = cmp === '<' ? value < limit : value <= limit;
  }
  return row;
}

// --- statistics -------------------------------------------------------------

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  // nearest rank
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summary(samples: number[]): { n: number; p50: number; p95: number; max: number; min: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  return {
    n: s.length,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    max: s[s.length - 1] ?? NaN,
    min: s[0] ?? NaN,
    mean: s.reduce((a, b) => a + b, 0) / Math.max(1, s.length),
  };
}

// --- /proc ------------------------------------------------------------------

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a process, in ms (clock-tick resolution, 10 ms here). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces: fields are counted after its closing ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLK_TCK;
}

/** VmRSS and VmHWM (peak) of a process, in MB. */
export function memMB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** Samples a process's VmRSS every `everyMs`; `stop()` gives the peak seen and the kernel's VmHWM. */
export function sampleRss(pid: number, everyMs = 100): { stop(): { peakSampledMB: number; hwmMB: number; samples: number } } {
  let peak = 0;
  let samples = 0;
  const tick = (): void => {
    try {
      peak = Math.max(peak, memMB(pid).rss);
      samples++;
    } catch {
      // gone
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(timer);
      tick();
      let hwm = NaN;
      try {
        hwm = memMB(pid).hwm;
      } catch {
        // gone
      }
      return { peakSampledMB: peak, hwmMB: hwm, samples };
    },
  };
}

// --- a bare rsync daemon: the baseline --------------------------------------

/**
 * `rsync --daemon` with the options of the master's own daemon that matter
 * for speed (TCP_NODELAY, read only, no reverse lookup, numeric ids, chroot
 * when root, same listen backlog) but no authentication and no exclude file:
 * what a plain rsync setup would do, serving the same directory.
 */
export class BareRsyncd {
  readonly dir = mkdtempSync(join(tmpdir(), 'inosync-bench-rsyncd-'));
  port = 0;
  private pid = 0;

  constructor(private readonly modules: Record<string, string>) {}

  private untrack: (() => void) | null = null;

  cleanup(): void {
    this.stop();
  }

  async start(): Promise<this> {
    this.untrack = track(this);
    this.port = await findFreePort('127.0.0.1');
    const root = process.getuid?.() === 0;
    const lines = [
      `pid file = ${join(this.dir, 'rsyncd.pid')}`,
      `log file = ${join(this.dir, 'rsyncd.log')}`,
      'reverse lookup = no',
      'socket options = TCP_NODELAY',
      'listen backlog = 256',
    ];
    for (const [name, path] of Object.entries(this.modules)) {
      lines.push(
        '',
        `[${name}]`,
        `path = ${path}/`,
        'read only = yes',
        'list = no',
        `use chroot = ${root ? 'yes' : 'no'}`,
        'munge symlinks = no',
        'numeric ids = yes',
        ...(root ? ['uid = 0', 'gid = 0'] : []),
        'max connections = 0',
        'transfer logging = no',
        'timeout = 600',
      );
    }
    writeFileSync(join(this.dir, 'rsyncd.conf'), lines.join('\n') + '\n');
    // Without --no-detach rsync forks into the background and writes its pid file.
    const child = spawn('rsync', ['--daemon', `--config=${join(this.dir, 'rsyncd.conf')}`, `--port=${this.port}`, '--address=127.0.0.1'], {
      stdio: 'ignore',
    });
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`rsync --daemon exited ${code}`))));
    });
    await waitFor(
      () => {
        try {
          this.pid = Number(readFileSync(join(this.dir, 'rsyncd.pid'), 'utf8').trim());
          return this.pid > 0;
        } catch {
          return false;
        }
      },
      10_000,
      'bare rsync daemon pid file',
    );
    // Accepting connections: one listing of a module answers.
    await waitFor(async () => (await run('rsync', [`rsync://127.0.0.1:${this.port}/`])).code === 0, 10_000, 'bare rsync daemon');
    return this;
  }

  url(module: string, rel = ''): string {
    return `rsync://127.0.0.1:${this.port}/${module}/${rel}`;
  }

  stop(): void {
    this.untrack?.();
    if (this.pid > 0) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface RunOutcome {
  code: number | null;
  ms: number;
  stdout: string;
  stderr: string;
}

/** Spawns a program and times it from spawn to exit. */
export function run(cmd: string, args: string[]): Promise<RunOutcome> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, ms: performance.now() - t0, stdout, stderr }));
  });
}

/** The baseline pull: what an operator would type, over the bare daemon. */
export const BARE_FLAGS = ['-a', '--delete', '--sockopts=TCP_NODELAY'];

/** Runs `rsync BARE_FLAGS url dest` for every dest at once; the time until the last one ends. */
export async function barePulls(url: string, dests: string[]): Promise<{ ms: number; each: number[] }> {
  for (const d of dests) mkdirSync(d, { recursive: true });
  const t0 = performance.now();
  const outs = await Promise.all(dests.map((d) => run('rsync', [...BARE_FLAGS, url, d.endsWith('/') ? d : d + '/'])));
  const ms = performance.now() - t0;
  for (const o of outs) if (o.code !== 0) throw new Error(`bare rsync pull failed (${o.code}): ${o.stderr.trim()}`);
  return { ms, each: outs.map((o) => o.ms) };
}

// --- cheap tree comparison --------------------------------------------------

/**
 * Every entry below `dir` as "path type mode uid gid size mtime" lines, by
 * GNU find (C speed, no hashing): used to detect convergence while timing.
 * Directory sizes are left out (they depend on the filesystem's history).
 */
export async function metaListing(dir: string): Promise<Map<string, string>> {
  const list = () => run('find', [dir, '-printf', '%P\\0%y\\0%m\\0%U\\0%G\\0%s\\0%T@\\0']);
  let out = await list();
  // A directory that an rsync run renames or deletes while find reads it
  // ("No such file or directory") is a mirror still changing: look again.
  for (let tries = 0; out.code !== 0 && tries < 20 && vanished(out.stderr); tries++) {
    await sleep(20);
    out = await list();
  }
  if (out.code !== 0) throw new Error(`find ${dir}: ${out.stderr.trim()}`);
  const f = out.stdout.split('\0');
  const m = new Map<string, string>();
  for (let i = 0; i + 7 <= f.length; i += 7) {
    const type = f[i + 1]!;
    m.set(f[i]!, `${type} ${f[i + 2]} ${f[i + 3]} ${f[i + 4]} ${type === 'd' ? '-' : f[i + 5]} ${f[i + 6]}`);
  }
  return m;
}

function vanished(stderr: string): boolean {
  const lines = stderr.trim().split('\n').filter(Boolean);
  return lines.length > 0 && lines.every((l) => /No such file or directory/.test(l));
}

export function metaDiff(a: Map<string, string>, b: Map<string, string>): number {
  let n = 0;
  for (const [k, v] of a) if (b.get(k) !== v) n++;
  for (const k of b.keys()) if (!a.has(k)) n++;
  return n;
}

/** Number of entries that differ between the origin and each mirror (metadata only). */
export async function mirrorsDiffer(c: Cluster, which: number[]): Promise<number[]> {
  const [o, ...ms] = await Promise.all([metaListing(c.origin()), ...which.map((i) => metaListing(c.mirror(i)))]);
  return ms.map((m) => metaDiff(o!, m));
}

/**
 * Waits until the master reports the given nodes idle and their mirrors equal
 * the origin in metadata; returns ms since `t0` at the first status poll that
 * saw them idle on the way to a passing comparison. Status polls are cheap;
 * the comparison runs only once the nodes look idle.
 */
export async function timeConverged(
  c: Cluster,
  which: number[],
  t0: number,
  opts: { timeoutMs?: number; pollMs?: number; minBatches?: number } = {},
): Promise<{ ms: number; checks: number }> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const pollMs = opts.pollMs ?? 20;
  const deadline = performance.now() + timeoutMs;
  let checks = 0;
  let lastStates = '';
  for (;;) {
    const asked = performance.now();
    const s = await c.fetchStatus();
    const at = performance.now();
    if (process.env.INOSYNC_BENCH_DEBUG) {
      const states = JSON.stringify(s?.nodes.map((n) => [n.state, n.pending, n.inFlight]));
      if (states !== lastStates || at - asked > 100) process.stderr.write(`  [status ${round(at - t0)} ms, took ${round(at - asked)}] ${states}\n`);
      lastStates = states;
    }
    const idle =
      s !== null &&
      (opts.minBatches === undefined || s.batches >= opts.minBatches) &&
      which.every((i) => {
        const n = s.nodes.find((x) => x.name === c.agentName(i));
        return n !== undefined && n.state === 'idle' && n.pending === 0 && n.inFlight === 0;
      });
    if (idle) {
      checks++;
      const diffs = await mirrorsDiffer(c, which);
      if (process.env.INOSYNC_BENCH_DEBUG) {
        process.stderr.write(`  [check ${checks}] idle at ${round(at - t0)} ms, compared by ${round(performance.now() - t0)} ms: ${diffs.join(',')}\n`);
      }
      if (diffs.every((d) => d === 0)) return { ms: at - t0, checks };
    }
    if (performance.now() > deadline) {
      throw new Error(`not converged after ${timeoutMs} ms: ${JSON.stringify(s?.nodes.map((n) => [n.name, n.state, n.pending, n.inFlight]))}`);
    }
    await sleep(pollMs);
  }
}

/** The strict comparison of harness/tree.ts (content hashes included); untimed. */
export async function assertStrictlyConverged(c: Cluster, which: number[]): Promise<void> {
  const o = await snapshotTree(c.origin());
  for (const i of which) assertTreesEqual(await snapshotTree(c.mirror(i)), o, { names: [`mirror${i}`, 'origin'] });
}

/** `DEBUG rsync ` lines: one per rsync run the agent started. */
export function rsyncRuns(c: Cluster, i: number): number {
  try {
    return readFileSync(join(c.dir, `agent${i}.log`), 'utf8').split('\n').filter((l) => / DEBUG rsync /.test(l)).length;
  } catch {
    return 0;
  }
}

// --- one change, watched ---

/** Resolves with performance.now() once `check` passes; checked on inotify events in `dirs` and every `pollMs`. */
export function until(check: () => boolean, dirs: string[], pollMs = 5, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    const watchers: FSWatcher[] = [];
    let done = false;
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      const at = performance.now();
      clearInterval(timer);
      clearTimeout(limit);
      for (const w of watchers) w.close();
      if (err) reject(err);
      else resolve(at);
    };
    const probe = (): void => {
      if (done) return;
      try {
        if (check()) finish();
      } catch {
        // not there yet
      }
    };
    for (const d of dirs) watchers.push(watch(d, probe));
    const timer = setInterval(probe, pollMs);
    const limit = setTimeout(() => finish(new Error(`not converged within ${timeoutMs} ms`)), timeoutMs);
    probe();
  });
}

export function sameFile(a: string, b: string, content: Buffer): boolean {
  const sa = lstatSync(a, { bigint: true });
  const sb = lstatSync(b, { bigint: true });
  if (sa.size !== sb.size || sa.mtimeNs !== sb.mtimeNs || sa.mode !== sb.mode) return false;
  return readFileSync(b).equals(content);
}

export function sameMtime(a: string, b: string): boolean {
  return lstatSync(a, { bigint: true }).mtimeNs === lstatSync(b, { bigint: true }).mtimeNs;
}

// --- trees ------------------------------------------------------------------

/** `dirs` new directories under `root` holding `files` files of `size` bytes in all. */
export function writeFiles(root: string, dirs: number, files: number, size: number, prefix = 'd'): void {
  const body = Buffer.alloc(size, 'x');
  const per = Math.ceil(files / dirs);
  let n = 0;
  for (let d = 0; d < dirs && n < files; d++) {
    const dir = join(root, `${prefix}${d}`);
    mkdirSync(dir);
    for (let f = 0; f < per && n < files; f++, n++) writeFileSync(join(dir, `f${f}`), body);
  }
}

export function scratchDir(what: string): string {
  return mkdtempSync(join(tmpdir(), `inosync-bench-${what}-`));
}

/** Copies a tree with everything rsync compares (cp -a keeps modes, owners and ns mtimes). */
export async function copyTree(from: string, to: string): Promise<void> {
  mkdirSync(to, { recursive: true });
  const out = await run('cp', ['-a', `${from}/.`, to]);
  if (out.code !== 0) throw new Error(`cp -a failed: ${out.stderr}`);
}

/** Clusters and daemons alive now: killed if the bench itself is interrupted. */
const live = new Set<{ cleanup(): unknown }>();
let handlersInstalled = false;

export function track(x: { cleanup(): unknown }): () => void {
  if (!handlersInstalled) {
    handlersInstalled = true;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.once(sig, () => {
        process.stderr.write(`bench: ${sig}, stopping ${live.size} cluster(s)/daemon(s)\n`);
        void Promise.allSettled([...live].map((x) => x.cleanup())).then(() => process.exit(130));
      });
    }
  }
  live.add(x);
  return () => live.delete(x);
}

export async function withCluster<T>(c: Cluster, body: (c: Cluster) => Promise<T>): Promise<T> {
  const untrack = track(c);
  try {
    return await body(c);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${c.logs(15)}`);
  } finally {
    untrack();
    keepLogs(c);
    await c.cleanup();
  }
}

let kept = 0;
/** INOSYNC_BENCH_KEEP_LOGS=DIR copies each cluster's logs there (cluster-N-*.log) before cleanup, to see where a run's time went. */
function keepLogs(c: Cluster): void {
  const dir = process.env.INOSYNC_BENCH_KEEP_LOGS;
  if (!dir) return;
  const n = ++kept;
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(c.dir)) if (f.endsWith('.log')) copyFileSync(join(c.dir, f), join(dir, `cluster-${n}-${f}`));
}

/**
 * Cluster.startMaster, but at the default log level (no -v): Cluster always
 * logs at debug level, a line per agent result and per rsync daemon log line,
 * which production masters do not pay for.
 */
export async function startMasterInfo(c: Cluster): Promise<void> {
  const log = join(c.dir, 'master.log');
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, [new URL('../../src/cli/master.js', import.meta.url).pathname, '-c', c.masterConfig], {
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  c.master = { child, log, exited };
  await waitFor(async () => (await c.fetchStatus()) !== null, 20_000, 'master status endpoint', () => c.logs());
}

/**
 * Cluster.start() with the master at its default log level (startMasterInfo),
 * for workloads that read nothing from the master's log. The agents keep -v:
 * rsyncRuns counts their debug lines.
 */
export async function startInfo(c: Cluster): Promise<void> {
  await startMasterInfo(c);
  for (let i = 0; i < c.agentCount; i++) c.startAgent(i);
  await c.waitIdle();
}

export { Cluster, waitFor };
