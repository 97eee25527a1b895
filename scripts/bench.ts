// `npm run bench`: inosync against plain rsync on this machine. Every figure is
// measured next to a baseline taken in the same run, and reported as a ratio:
// the machine is shared and noisy, absolute numbers are not comparable across
// runs. Prints a table and writes bench-results/bench-<date>.json.
//
// usage: node dist/scripts/bench.js [--quick] [--million] [--only NAME[,NAME]] [--list]
//   --quick    smaller sizes, a smoke run (a few minutes)
//   --million  watch-scale watches 1,000,000 files for real (default: 300,000, extrapolated)
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Ctx, Row, WorkloadResult } from './bench/lib.js';
import { latency } from './bench/latency.js';
import { burst, storm } from './bench/burst.js';
import { flood } from './bench/flood.js';
import { watchScale } from './bench/watch-scale.js';
import { fanout } from './bench/fanout.js';
import { isolation } from './bench/isolation.js';
import { signing } from './bench/signing.js';
import { tls } from './bench/tls.js';
import { nodelay } from './bench/nodelay.js';

const WORKLOADS: Record<string, (ctx: Ctx) => Promise<WorkloadResult>> = {
  signing,
  latency,
  burst,
  storm,
  flood,
  'watch-scale': watchScale,
  fanout,
  isolation,
  tls,
  nodelay,
};

function usage(code: number, why?: string): never {
  if (why) process.stderr.write(`${why}\n`);
  process.stderr.write(`usage: bench [--quick] [--million] [--only NAME[,NAME]]\nworkloads: ${Object.keys(WORKLOADS).join(', ')}\n`);
  process.exit(code);
}

function parseArgs(argv: string[]): { quick: boolean; million: boolean; only: string[] } {
  let quick = false;
  let million = false;
  let only = Object.keys(WORKLOADS);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--million') million = true;
    else if (a === '--only' || a.startsWith('--only=')) {
      const v = a === '--only' ? argv[++i] : a.slice('--only='.length);
      if (!v) usage(2, '--only needs a list of workloads');
      only = v.split(',').map((s) => s.trim()).filter(Boolean);
      const unknown = only.filter((n) => !(n in WORKLOADS));
      if (unknown.length > 0) usage(2, `unknown workload(s): ${unknown.join(', ')}`);
    } else if (a === '--list') {
      process.stdout.write(Object.keys(WORKLOADS).join('\n') + '\n');
      process.exit(0);
    } else if (a === '-h' || a === '--help') usage(0);
    else usage(2, `unknown argument ${a}`);
  }
  return { quick, million, only };
}

function fmt(n: number | undefined): string {
  if (n === undefined || Number.isNaN(n)) return '';
  if (!Number.isFinite(n)) return 'inf';
  if (Math.abs(n) >= 100) return String(Math.round(n));
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

export function renderTable(rows: Row[]): string {
  const head = ['workload', 'metric', 'inosync', 'baseline', 'ratio', 'target', 'met'];
  const body = rows.map((r) => [
    r.workload,
    r.metric,
    `${fmt(r.value)} ${r.unit}`,
    r.baseline === undefined ? '' : `${fmt(r.baseline)} ${r.unit}${r.baselineWhat ? ` (${r.baselineWhat})` : ''}`,
    r.ratio === undefined ? '' : `${fmt(r.ratio)}x`,
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'met' : 'NOT MET',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

function machine(): Record<string, unknown> {
  const rsync = (() => {
    try {
      return execFileSync('rsync', ['--version'], { encoding: 'utf8' }).split('\n')[0];
    } catch {
      return 'not found';
    }
  })();
  const kernel = (() => {
    try {
      return execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    memGB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel,
    rsync,
    uid: process.getuid?.(),
  };
}

async function main(): Promise<void> {
  const { quick, million, only } = parseArgs(process.argv.slice(2));
  const started = new Date();
  const ctx: Ctx = {
    quick,
    million,
    log: (msg) => process.stderr.write(`[bench ${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`),
  };
  const t0 = performance.now();
  const results: WorkloadResult[] = [];
  for (const name of only) {
    ctx.log(`${name}: starting${quick ? ' (quick)' : ''}`);
    const w0 = performance.now();
    let r: WorkloadResult;
    try {
      r = await WORKLOADS[name]!(ctx);
    } catch (err) {
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      ctx.log(`${name}: FAILED: ${message}`);
      r = { name, rows: [], notes: [], data: {}, error: message.slice(0, 8000) };
    }
    r.seconds = Math.round((performance.now() - w0) / 100) / 10;
    results.push(r);
    ctx.log(`${name}: done in ${r.seconds} s`);
    if (r.rows.length > 0) process.stderr.write(renderTable(r.rows) + '\n');
  }
  const rows = results.flatMap((r) => r.rows);
  const out = [renderTable(rows)];
  for (const r of results) {
    if (r.error) out.push(`\n${r.name}: FAILED: ${r.error.split('\n')[0]}`);
    for (const n of r.notes) out.push(`- ${r.name}: ${n}`);
  }
  process.stdout.write(`\ninosync bench${quick ? ' (--quick)' : ''}, ${started.toISOString()}, ${Math.round((performance.now() - t0) / 1000)} s\n\n`);
  process.stdout.write(out.join('\n') + '\n');

  const dir = join(process.cwd(), 'bench-results');
  mkdirSync(dir, { recursive: true });
  const stamp = started.toISOString().replace(/[:]/g, '-').replace(/\..*$/, '');
  const file = join(dir, `bench-${stamp}${quick ? '-quick' : ''}.json`);
  writeFileSync(
    file,
    JSON.stringify({ started: started.toISOString(), seconds: Math.round((performance.now() - t0) / 1000), quick, only, machine: machine(), results }, null, 2) + '\n',
  );
  process.stdout.write(`\nresults: ${file}\n`);
  if (results.some((r) => r.error)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
