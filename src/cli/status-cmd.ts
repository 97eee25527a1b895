// `inosync status`: asks the master's status endpoint and prints the table or
// the raw JSON, once or every N seconds. Exit codes follow Nagios: 0 OK,
// 1 degraded, 2 master unreachable or not answering as an inosync master.
import { isIPv6 } from 'node:net';
import type { MasterStatus } from '../protocol/status.js';
import { renderStatusTable, statusExitCode } from './status-table.js';

export interface StatusCommandOptions {
  /** base URL of the master's status listener, e.g. http://127.0.0.1:7071 */
  url: string;
  json: boolean;
  /** refresh every this many seconds until SIGINT; null for one shot */
  watch: number | null;
  /** default: stdout is a terminal and NO_COLOR is unset */
  color?: boolean;
  out?: { write(s: string): unknown };
  err?: { write(s: string): unknown };
}

const FETCH_TIMEOUT_MS = 5_000;
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

/** Where to reach a status listener bound to host:port from the same machine. */
export function statusUrlFromListen(host: string, port: number): string {
  let h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  // A wildcard bind is reachable on loopback; the wildcard itself is no address.
  if (h === '' || h === '0.0.0.0') h = '127.0.0.1';
  else if (isIPv6(h.split('%', 1)[0]!) && /^[0:]+$/.test(h)) h = '::1';
  if (isIPv6(h.split('%', 1)[0]!)) h = `[${h.replace('%', '%25')}]`;
  return `http://${h}:${port}`;
}

type Fetched = { ok: true; status: MasterStatus; body: string } | { ok: false; message: string };

function looksLikeStatus(v: unknown): v is MasterStatus {
  if (typeof v !== 'object' || v === null) return false;
  const nodes = (v as { nodes?: unknown }).nodes;
  return (
    Array.isArray(nodes) &&
    nodes.every((n: unknown) => typeof n === 'object' && n !== null && typeof (n as { name?: unknown }).name === 'string' && typeof (n as { state?: unknown }).state === 'string')
  );
}

function reachFailure(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError') return `no answer within ${FETCH_TIMEOUT_MS / 1000} s`;
  if (e.name === 'AbortError') return 'interrupted';
  const code = e.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused (is inosync-master running, and is status.listen this address?)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host name not found';
  return e.cause?.message ?? e.message ?? String(err);
}

async function fetchStatus(base: string, signal: AbortSignal): Promise<Fetched> {
  const url = `${base.replace(/\/+$/, '')}/status`;
  const where = `the master at ${url}`;
  try {
    const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(FETCH_TIMEOUT_MS)]), redirect: 'error' });
    const body = await res.text();
    if (res.status !== 200) return { ok: false, message: `${where} answered HTTP ${res.status}` };
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return { ok: false, message: `${where} answered something that is not JSON; is this the master's status listener?` };
    }
    if (!looksLikeStatus(parsed)) return { ok: false, message: `${where} answered JSON that is not an inosync status` };
    return { ok: true, status: parsed, body };
  } catch (err) {
    return { ok: false, message: `cannot reach ${where}: ${reachFailure(err)}` };
  }
}

function colorByDefault(): boolean {
  return process.stdout.isTTY === true && process.env.NO_COLOR === undefined && process.env.TERM !== 'dumb';
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

type Writer = { write(s: string): unknown };

async function showOnce(opts: StatusCommandOptions, color: boolean, signal: AbortSignal, out: Writer, err: Writer): Promise<number> {
  const r = await fetchStatus(opts.url, signal);
  if (!r.ok) {
    err.write(`inosync status: ${r.message}\n`);
    return 2;
  }
  // --json passes the master's answer through untouched, so scripts see
  // exactly what /status serves.
  out.write(opts.json ? r.body.replace(/\n?$/, '\n') : renderStatusTable(r.status, { color }));
  return statusExitCode(r.status);
}

export async function runStatusCommand(opts: StatusCommandOptions): Promise<number> {
  const out = opts.out ?? process.stdout;
  const err = opts.err ?? process.stderr;
  const color = opts.color ?? colorByDefault();
  if (opts.watch === null) return showOnce(opts, color, new AbortController().signal, out, err);
  const every = opts.watch;
  if (!(every > 0) || !Number.isFinite(every)) throw new RangeError(`watch interval must be a positive number of seconds, got ${every}`);

  const stop = new AbortController();
  const onInterrupt = (): void => stop.abort();
  process.on('SIGINT', onInterrupt);
  // Interrupted before the first answer: nothing is known, as if unreachable.
  let last = 2;
  try {
    while (!stop.signal.aborted) {
      // Each refresh is gathered first and drawn in one go, so the screen is
      // never blank while the master is slow to answer.
      let shown = '';
      let problem = '';
      const code = await showOnce(opts, color, stop.signal, { write: (s) => (shown += s) }, { write: (s) => (problem += s) });
      if (stop.signal.aborted) break;
      last = code;
      out.write(`${CLEAR_SCREEN}every ${every}s: ${opts.url}  ${new Date().toLocaleTimeString()}  (Ctrl-C to stop)\n\n${shown}`);
      if (problem) err.write(problem);
      await sleep(every * 1000, stop.signal);
    }
  } finally {
    process.off('SIGINT', onInterrupt);
  }
  return last;
}
