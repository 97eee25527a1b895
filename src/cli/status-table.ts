// `inosync status` as a table and as a Nagios-style exit code. Pure: the
// snapshot may come from a master of another version, so every figure that
// could be missing is read defensively.
import type { MasterStatus, NodeState, NodeStatus } from '../protocol/status.js';

export interface StatusTableOptions {
  /** ms epoch to measure ages from; by default the master's clock at the snapshot */
  now?: number;
  color?: boolean;
}

const ERROR_WIDTH = 60;

const ANSI = { reset: '\x1b[0m', bold: '\x1b[1m', dim: '\x1b[2m', red: '\x1b[31m', green: '\x1b[32m', yellow: '\x1b[33m' } as const;
type Tone = keyof typeof ANSI;

const STATE_TONE: Record<NodeState, Tone> = {
  idle: 'green',
  syncing: 'yellow',
  lagging: 'yellow',
  'initial-sync': 'yellow',
  connecting: 'yellow',
  error: 'red',
  disconnected: 'red',
  'never-connected': 'dim',
};

/**
 * States in which a node holds a complete, fresh copy. 'syncing' counts: the
 * master calls a node 'lagging' once its lag passes LAGGING_AFTER_S, so a
 * 'syncing' node is within that bound. 'initial-sync' does not: the mirror is
 * still incomplete and must not pass a health check as if it could serve.
 */
const CURRENT: ReadonlySet<string> = new Set<NodeState>(['idle', 'syncing']);

/**
 * 0 (OK) when every node is connected and current, the rsync daemon runs and
 * no path is paused; 1 (WARNING) otherwise. A paused path or a dead daemon
 * leaves nodes 'idle' while their mirrors go stale, so they count too.
 * 2 (unreachable master) is for the command to decide.
 */
export function statusExitCode(s: MasterStatus): 0 | 1 {
  const nodesOk = (s.nodes ?? []).every((n) => n.connected === true && CURRENT.has(n.state));
  const pathsOk = (s.paths ?? []).every((p) => !p.paused);
  const rsyncdOk = s.rsyncd?.running !== false;
  return nodesOk && pathsOk && rsyncdOk ? 0 : 1;
}

// Names, addresses and error messages come from configs, peers and rsync's
// stderr: control characters in them must not move the cursor or recolour.
// eslint-disable-next-line no-control-regex
const clean = (v: unknown): string => String(v ?? '').replace(/[\x00-\x1f\x7f-\x9f]+/g, ' ').trim();

function truncate(v: string, width: number): string {
  return v.length <= width ? v : v.slice(0, width - 1) + '…';
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  if (seconds < 10) return `${Math.round(seconds * 10) / 10}s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

// Ages are measured on the master's clock (start time plus uptime) so that a
// skewed clock on the operator's machine cannot make a fresh sync look old.
function snapshotTime(s: MasterStatus): number {
  const started = Date.parse(s.startedAt);
  return Number.isFinite(started) && typeof s.uptimeSeconds === 'number' ? started + s.uptimeSeconds * 1000 : Date.now();
}

function lastSyncCell(n: NodeStatus, now: number): string {
  const ls = n.lastSync;
  if (!ls) return 'never';
  const age = (now - Date.parse(ls.at)) / 1000;
  const files = `${ls.files} file${ls.files === 1 ? '' : 's'}`;
  return `${formatDuration(Math.max(0, age))} ago, took ${formatDuration(ls.durationMs / 1000)}, ${files}, ${formatBytes(ls.bytes)}${ls.full ? ', full' : ''}`;
}

function errorCell(n: NodeStatus): string {
  const e = n.lastError;
  if (e) {
    const where = e.path ? ` [${clean(e.path)}]` : '';
    const what = e.exit !== null && e.exit !== undefined ? `rsync exit ${e.exit}` : clean(e.kind) || 'error';
    return truncate(`${what}${where}: ${clean(e.message)}`, ERROR_WIDTH);
  }
  // A node that never gets in is usually refused (wrong key, wrong address):
  // the refusal is the error worth showing.
  if (!n.connected && n.lastRefusal) return truncate(`refused: ${clean(n.lastRefusal.reason)}`, ERROR_WIDTH);
  return '-';
}

function stateCell(n: NodeStatus): string {
  const pct = n.progress && Number.isFinite(n.progress.percent) ? ` ${Math.round(n.progress.percent)}%` : '';
  // A paced node is still converging, only in fewer, larger runs: say so, or
  // its steady lag under a busy origin looks like a fault.
  const paced = n.pacedUntil ? ' (paced)' : '';
  return clean(n.state) + pct + paced;
}

/** " (a, b)" of the non-empty notes, or "" */
function parenthesize(notes: string[]): string {
  const some = notes.filter((n) => n !== '');
  return some.length > 0 ? ` (${some.join(', ')})` : '';
}

function headerLines(s: MasterStatus, paint: (t: Tone, v: string) => string): string[] {
  const rs = s.rsyncd;
  const rsyncd = !rs
    ? 'rsyncd unknown'
    : rs.running
      ? `rsyncd running${parenthesize([rs.tls === true ? 'TLS' : '', rs.restarts > 0 ? `${rs.restarts} restarts` : ''])}`
      : paint('red', `rsyncd DOWN${rs.lastError ? `: ${truncate(clean(rs.lastError), ERROR_WIDTH)}` : ''}`);
  const refusals = (s.refusals ?? []).length;
  const refusalText = `${refusals} recent refusal${refusals === 1 ? '' : 's'}`;
  const first = [
    `inosync master ${clean(s.version)}`,
    `up ${formatDuration(s.uptimeSeconds)}`,
    rsyncd,
    refusals > 0 ? paint('yellow', refusalText) : refusalText,
  ].join('  |  ');
  const paths = (s.paths ?? []).map((p) => {
    if (p.paused) return paint('red', `${clean(p.name)} (PAUSED: ${truncate(clean(p.paused), ERROR_WIDTH)})`);
    // Not an error state (the master fell back to full syncs), but worth a look.
    const last = p.lastWatchProblem;
    if (last) return paint('yellow', `${clean(p.name)} (${p.watchErrors} watch problem${p.watchErrors === 1 ? '' : 's'}, last ${clean(last.kind)}: ${truncate(clean(last.message), ERROR_WIDTH)})`);
    return clean(p.name);
  });
  return [first, `paths: ${paths.length > 0 ? paths.join(', ') : '(none)'}`];
}

const COLUMNS = ['NODE', 'STATE', 'LAG', 'PENDING', 'LAST SYNC', 'ADDRESS', 'ERROR'] as const;

export function renderStatusTable(s: MasterStatus, opts: StatusTableOptions = {}): string {
  const paint = (t: Tone, v: string): string => (opts.color ? `${ANSI[t]}${v}${ANSI.reset}` : v);
  const now = opts.now ?? snapshotTime(s);
  const nodes = s.nodes ?? [];
  const lines = headerLines(s, paint);
  lines.push('');
  if (nodes.length === 0) {
    lines.push('no nodes configured');
    return lines.join('\n') + '\n';
  }

  const rows = nodes.map((n) => ({
    tone: STATE_TONE[n.state as NodeState] ?? 'red',
    errored: n.lastError != null,
    cells: [
      clean(n.name),
      stateCell(n),
      formatDuration(n.lagSeconds),
      String(n.pending ?? '-'),
      lastSyncCell(n, now),
      clean(n.address) || '-',
      errorCell(n),
    ],
  }));
  const widths = COLUMNS.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  // Pad before painting: escape codes take no room on screen but count in length.
  const pad = (cells: readonly string[]): string[] => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)));

  lines.push(paint('bold', pad(COLUMNS).join('  ').trimEnd()));
  for (const r of rows) {
    const cells = pad(r.cells);
    cells[1] = paint(r.tone, cells[1]!);
    if (r.errored) cells[6] = paint('red', cells[6]!);
    lines.push(cells.join('  ').trimEnd());
  }
  return lines.join('\n') + '\n';
}
