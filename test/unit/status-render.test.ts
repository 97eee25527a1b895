import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MasterStatus, NodeState, NodeStatus } from '../../src/protocol/status.js';
import { NODE_STATES, renderMetrics } from '../../src/master/metrics.js';
import { formatBytes, formatDuration, renderStatusTable, statusExitCode } from '../../src/cli/status-table.js';
import { statusUrlFromListen } from '../../src/cli/status-cmd.js';
import { parseExposition, sample } from '../../harness/prometheus.js';

// --- fixtures ---------------------------------------------------------------

const T0 = Date.parse('2025-01-01T12:00:00.000Z');
const NOW = T0 + 3_600_000;
const ago = (s: number): string => new Date(NOW - s * 1000).toISOString();

function node(name: string, state: NodeState, over: Partial<NodeStatus> = {}): NodeStatus {
  const connected = !['never-connected', 'connecting', 'disconnected'].includes(state);
  return {
    name,
    state,
    connected,
    connectedSince: connected ? ago(600) : null,
    lastSeen: state === 'never-connected' ? null : ago(1),
    address: state === 'never-connected' ? null : '10.0.0.7:51234',
    version: '1.0.0',
    lastBatchSent: 10,
    lastBatchAcked: 10,
    lastBatchApplied: 9,
    pending: 0,
    inFlight: 0,
    pacedUntil: null,
    lagSeconds: 0,
    lastSync: state === 'never-connected' ? null : { at: ago(12), durationMs: 1500, files: 14, bytes: 3_500_000, full: false },
    progress: null,
    lastError: null,
    lastRefusal: null,
    syncs: { ok: 5, failed: 0 },
    bytesTotal: 1000,
    filesTotal: 20,
    ...over,
  };
}

/** One node in every state, each with figures that tell them apart. */
function everyState(): NodeStatus[] {
  return [
    node('never', 'never-connected', {
      syncs: { ok: 0, failed: 0 },
      bytesTotal: 0,
      filesTotal: 0,
      pending: 2,
      lagSeconds: 3600,
      lastRefusal: { at: ago(5), address: '10.0.0.9:4000', reason: 'signature does not match the configured key' },
    }),
    node('conn', 'connecting', { connected: false }),
    node('init', 'initial-sync', { pending: 2, inFlight: 1, lagSeconds: 4.2, progress: { path: 'www', percent: 41.6 } }),
    node('calm', 'idle', { syncs: { ok: 42, failed: 3 }, bytesTotal: 123456789, filesTotal: 9876 }),
    node('busy', 'syncing', { pending: 17, inFlight: 1, lagSeconds: 1.25, pacedUntil: ago(-2) }),
    node('slow', 'lagging', { pending: 900, inFlight: 2, lagSeconds: 95 }),
    node('broke', 'error', {
      syncs: { ok: 1, failed: 4 },
      lastError: {
        at: ago(30),
        path: 'www',
        exit: 23,
        kind: 'retry',
        message: 'rsync: [receiver] mkstemp "/srv/www/a.html" failed: Permission denied (13) and then a very long tail that must be cut',
      },
    }),
    node('gone', 'disconnected', { lagSeconds: 300, pending: 55 }),
  ];
}

function status(nodes: NodeStatus[], over: Partial<MasterStatus> = {}): MasterStatus {
  return {
    version: '1.2.3',
    session: 'ab'.repeat(16),
    startedAt: new Date(T0).toISOString(),
    uptimeSeconds: 3600,
    batches: 77,
    paths: [
      { name: 'www', watch: '/srv/www', backend: 'chokidar', paused: null, watchErrors: 0, lastEvent: ago(3) },
      { name: 'data', watch: '/srv/data', backend: 'parcel', paused: null, watchErrors: 2, lastEvent: null },
    ],
    rsyncd: { running: true, restarts: 1, lastError: null, tls: false },
    refusals: [
      { at: ago(5), node: 'never', address: '10.0.0.9:4000', reason: 'bad signature' },
      { at: ago(4), node: null, address: '10.0.0.8:4000', reason: 'unknown node' },
    ],
    nodes,
    ...over,
  };
}

// --- metrics ----------------------------------------------------------------

test('the parser rejects what Prometheus would', () => {
  const bad = [
    'x 1\n', // no HELP/TYPE
    '# HELP x h\n# TYPE x gauge\nx{a="\\q"} 1\n', // bad escape
    '# HELP x h\n# TYPE x counter\nx 1\n', // counter without _total
    '# HELP x h\n# TYPE x gauge\nx{a="1"} one\n', // bad value
    '# HELP x h\n# TYPE x gauge\nx 1\n# HELP y h\n# TYPE y gauge\ny 1\nx 2\n', // not contiguous
    '# HELP 1x h\n# TYPE 1x gauge\n1x 1\n', // bad name
  ];
  for (const t of bad) assert.throws(() => parseExposition(t), assert.AssertionError, JSON.stringify(t));
});

test('metrics parse as Prometheus text and carry every figure', () => {
  const nodes = everyState();
  const text = renderMetrics(status(nodes));
  const p = parseExposition(text);

  const expected: Record<string, string> = {
    inosync_node_up: 'gauge',
    inosync_node_state: 'gauge',
    inosync_node_lag_seconds: 'gauge',
    inosync_node_pending_changes: 'gauge',
    inosync_node_in_flight_batches: 'gauge',
    inosync_node_paced: 'gauge',
    inosync_node_syncs_total: 'counter',
    inosync_node_bytes_total: 'counter',
    inosync_node_files_total: 'counter',
    inosync_node_last_sync_duration_seconds: 'gauge',
    inosync_batches_total: 'counter',
    inosync_watch_errors_total: 'counter',
    inosync_path_paused: 'gauge',
    inosync_rsyncd_up: 'gauge',
    inosync_rsyncd_restarts_total: 'counter',
    inosync_refusals: 'gauge',
    inosync_uptime_seconds: 'gauge',
    inosync_build_info: 'gauge',
  };
  for (const [name, type] of Object.entries(expected)) assert.equal(p.families.get(name)?.type, type, name);

  for (const n of nodes) {
    assert.equal(sample(p, 'inosync_node_up', { node: n.name }), n.connected ? 1 : 0, n.name);
    const states = NODE_STATES.map((st) => sample(p, 'inosync_node_state', { node: n.name, state: st }));
    assert.deepEqual(states, NODE_STATES.map((st) => (st === n.state ? 1 : 0)), n.name);
    assert.equal(sample(p, 'inosync_node_lag_seconds', { node: n.name }), n.lagSeconds);
    assert.equal(sample(p, 'inosync_node_pending_changes', { node: n.name }), n.pending);
    assert.equal(sample(p, 'inosync_node_in_flight_batches', { node: n.name }), n.inFlight);
    assert.equal(sample(p, 'inosync_node_paced', { node: n.name }), n.name === 'busy' ? 1 : 0, n.name);
  }
  assert.equal(sample(p, 'inosync_node_syncs_total', { node: 'calm', result: 'ok' }), 42);
  assert.equal(sample(p, 'inosync_node_syncs_total', { node: 'calm', result: 'failed' }), 3);
  assert.equal(sample(p, 'inosync_node_bytes_total', { node: 'calm' }), 123456789);
  assert.equal(sample(p, 'inosync_node_files_total', { node: 'calm' }), 9876);
  assert.equal(sample(p, 'inosync_node_last_sync_duration_seconds', { node: 'calm' }), 1.5);
  assert.equal(sample(p, 'inosync_node_last_sync_duration_seconds', { node: 'never' }), undefined, 'no sync, no series');
  assert.equal(sample(p, 'inosync_batches_total'), 77);
  assert.equal(sample(p, 'inosync_watch_errors_total', { path: 'data' }), 2);
  assert.equal(sample(p, 'inosync_path_paused', { path: 'www' }), 0);
  assert.equal(sample(p, 'inosync_rsyncd_up'), 1);
  assert.equal(sample(p, 'inosync_rsyncd_restarts_total'), 1);
  assert.equal(sample(p, 'inosync_refusals'), 2);
  assert.equal(sample(p, 'inosync_uptime_seconds'), 3600);
  assert.equal(sample(p, 'inosync_build_info', { version: '1.2.3' }), 1);
  assert.equal(p.families.has('inosync_refusals_total'), false, 'only when the master reports it');
});

test('label values with backslash, quote and newline round-trip', () => {
  const weird = 'we"ird\\path\nnext';
  const s = status([node('a\\"b', 'idle')], {
    paths: [{ name: weird, watch: '/x', backend: 'chokidar', paused: 'root replaced', watchErrors: 5, lastEvent: null }],
    rsyncd: { running: false, restarts: 3, lastError: 'exited 10', tls: false },
  });
  const text = renderMetrics(s);
  assert.ok(text.includes('path="we\\"ird\\\\path\\nnext"'), text);
  const p = parseExposition(text);
  assert.equal(sample(p, 'inosync_watch_errors_total', { path: weird }), 5);
  assert.equal(sample(p, 'inosync_path_paused', { path: weird }), 1);
  assert.equal(sample(p, 'inosync_node_up', { node: 'a\\"b' }), 1);
  assert.equal(sample(p, 'inosync_rsyncd_up'), 0);
});

test('metrics of a master without nodes or paths still parse', () => {
  const p = parseExposition(renderMetrics(status([], { paths: [], refusals: [] })));
  assert.equal(sample(p, 'inosync_refusals'), 0);
  assert.ok(p.families.has('inosync_node_up'));
});

test('a total of refusals is exported when the master reports one', () => {
  const s = { ...status([]), refusalsTotal: 9 };
  assert.equal(sample(parseExposition(renderMetrics(s)), 'inosync_refusals_total'), 9);
});

// --- table ------------------------------------------------------------------

test('the table shows every node with its state, lag and error', () => {
  const s = status(everyState());
  const out = renderStatusTable(s, { now: NOW });
  assert.ok(!out.includes('\x1b'), 'no colour unless asked');
  const lines = out.split('\n');
  assert.match(lines[0]!, /inosync master 1\.2\.3/);
  assert.match(lines[0]!, /up 1h00m/);
  assert.match(lines[0]!, /rsyncd running \(1 restarts\)/);
  assert.match(renderStatusTable(status(everyState(), { rsyncd: { running: true, restarts: 1, lastError: null, tls: true } }), { now: NOW }), /rsyncd running \(TLS, 1 restarts\)/);
  assert.match(renderStatusTable(status(everyState(), { rsyncd: { running: true, restarts: 0, lastError: null, tls: true } }), { now: NOW }), /rsyncd running \(TLS\)  /);
  assert.match(lines[0]!, /2 recent refusals/);
  assert.match(lines[1]!, /paths: www, data/);
  const header = lines.find((l) => l.startsWith('NODE'))!;
  for (const h of ['STATE', 'LAG', 'PENDING', 'LAST SYNC', 'ADDRESS', 'ERROR']) assert.ok(header.includes(h), h);

  const row = (name: string): string => lines.find((l) => l.startsWith(name + ' '))!;
  for (const n of everyState()) assert.ok(row(n.name).includes(n.state), `${n.name} shows ${n.state}`);
  assert.match(row('broke'), /rsync exit 23 \[www\]: rsync: \[receiver\] mkstemp/);
  assert.match(row('broke'), /…$/, 'long errors are cut');
  assert.ok(!row('broke').includes('must be cut'));
  assert.match(row('never'), /never\s+never-connected .* never\s+-\s+refused: signature does not match/);
  assert.match(row('calm'), /12s ago, took 1\.5s, 14 files, 3\.3 MiB/);
  assert.match(row('slow'), /lagging\s+1m35s\s+900 /);
  assert.match(row('init'), /initial-sync 42%/);
  assert.match(row('busy'), /syncing \(paced\)\s+1\.3s/);
  assert.ok(!row('calm').includes('paced'));
  assert.match(row('calm'), /10\.0\.0\.7:51234/);

  // Columns line up: every row has ADDRESS at the header's offset.
  const at = header.indexOf('ADDRESS');
  for (const n of everyState()) {
    const r = row(n.name);
    assert.ok(r[at - 1] === ' ' && r[at - 2] === ' ' && r[at] !== ' ', `${n.name} aligned`);
  }
});

test('the header names a path whose watcher reported problems, with the last one', () => {
  const s = status([node('calm', 'idle')], {
    paths: [
      {
        name: 'www',
        watch: '/srv/www',
        backend: 'inotify',
        paused: null,
        watchErrors: 3,
        lastWatchProblem: { at: ago(2), kind: 'overflow', message: 'the inotify event queue of /srv/www overflowed' },
        lastEvent: null,
      },
      { name: 'data', watch: '/srv/data', backend: 'inotify', paused: null, watchErrors: 0, lastWatchProblem: null, lastEvent: null },
    ],
  });
  const out = renderStatusTable(s, { now: NOW });
  assert.match(out, /www \(3 watch problems, last overflow: the inotify event queue of \/srv\/www overflowed\)/);
  assert.match(out, /, data$/m);
  // Fallen back to full syncs: a warning to look at, not a failing check.
  assert.equal(statusExitCode(s), 0);
});

test('ages default to the master clock, not the local one', () => {
  const out = renderStatusTable(status([node('calm', 'idle')]));
  assert.match(out, /12s ago/);
});

test('the header flags paused paths and a stopped rsync daemon', () => {
  const s = status([node('calm', 'idle')], {
    paths: [{ name: 'www', watch: '/srv/www', backend: 'chokidar', paused: 'watch root was replaced', watchErrors: 0, lastEvent: null }],
    rsyncd: { running: false, restarts: 4, lastError: 'bind: address in use', tls: false },
    refusals: [],
  });
  const out = renderStatusTable(s, { now: NOW });
  assert.match(out, /www \(PAUSED: watch root was replaced\)/);
  assert.match(out, /rsyncd DOWN: bind: address in use/);
  assert.match(out, /0 recent refusals/);
});

test('colour follows the state, and only when asked', () => {
  const out = renderStatusTable(status(everyState()), { now: NOW, color: true });
  const lines = out.split('\n');
  const stateColour = (name: string): string | undefined => /\x1b\[(\d+)m(?:[a-z-]+)/.exec(lines.find((l) => l.startsWith(name + ' '))!)?.[1];
  assert.equal(stateColour('calm'), '32');
  for (const n of ['busy', 'slow', 'init', 'conn']) assert.equal(stateColour(n), '33', n);
  for (const n of ['broke', 'gone']) assert.equal(stateColour(n), '31', n);
  assert.equal(stateColour('never'), '2');
});

test('control characters from peers cannot reach the terminal', () => {
  const n = node('evil', 'error', { address: '1.2.3.4\x1b[2J', lastError: { at: ago(1), path: null, exit: null, kind: 'fatal', message: 'boom\x1b]0;pwned\x07\nsecond line' } });
  const out = renderStatusTable(status([n]), { now: NOW });
  assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(out), JSON.stringify(out));
  assert.match(out, /fatal: boom ]0;pwned second line/);
});

test('a master without nodes says so', () => {
  assert.match(renderStatusTable(status([]), { now: NOW }), /no nodes configured/);
});

test('durations and sizes read at a glance', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(1.25), '1.3s');
  assert.equal(formatDuration(59), '59s');
  assert.equal(formatDuration(95), '1m35s');
  assert.equal(formatDuration(7260), '2h01m');
  assert.equal(formatDuration(90000), '1d01h');
  assert.equal(formatBytes(512), '512 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(300 * 1024 * 1024), '300 MiB');
});

// --- exit code --------------------------------------------------------------

test('exit code 0 only when every node is connected and current', () => {
  assert.equal(statusExitCode(status([node('a', 'idle'), node('b', 'syncing', { lagSeconds: 2 })])), 0);
  assert.equal(statusExitCode(status([])), 0);
  for (const bad of ['never-connected', 'connecting', 'initial-sync', 'lagging', 'error', 'disconnected'] as const) {
    assert.equal(statusExitCode(status([node('a', 'idle'), node('b', bad)])), 1, bad);
  }
  assert.equal(statusExitCode(status(everyState())), 1);
});

test('a paused path or a stopped rsync daemon is degraded too', () => {
  const base = status([node('a', 'idle')]);
  assert.equal(statusExitCode({ ...base, rsyncd: { running: false, restarts: 0, lastError: null, tls: false } }), 1);
  assert.equal(statusExitCode({ ...base, paths: [{ ...base.paths[0]!, paused: 'root replaced' }] }), 1);
});

// --- JSON and URL -----------------------------------------------------------

test('the status JSON has the fields scripts rely on', () => {
  const j = JSON.parse(JSON.stringify(status(everyState()))) as { nodes: Record<string, unknown>[] };
  for (const n of j.nodes) for (const k of ['name', 'state', 'lagSeconds', 'pending', 'lastError']) assert.ok(k in n, k);
  assert.deepEqual(j.nodes.find((n) => n.name === 'broke')!.lastError, everyState()[6]!.lastError);
});

test('status URL from the listen address', () => {
  assert.equal(statusUrlFromListen('127.0.0.1', 7071), 'http://127.0.0.1:7071');
  assert.equal(statusUrlFromListen('0.0.0.0', 7071), 'http://127.0.0.1:7071');
  assert.equal(statusUrlFromListen('::', 7071), 'http://[::1]:7071');
  assert.equal(statusUrlFromListen('[::]', 7071), 'http://[::1]:7071');
  assert.equal(statusUrlFromListen('::1', 80), 'http://[::1]:80');
  assert.equal(statusUrlFromListen('fd00::5', 7071), 'http://[fd00::5]:7071');
  assert.equal(statusUrlFromListen('fe80::1%eth0', 7071), 'http://[fe80::1%25eth0]:7071');
  assert.equal(statusUrlFromListen('status.example.org', 7071), 'http://status.example.org:7071');
});
