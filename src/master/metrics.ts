// The master's figures in Prometheus text exposition format 0.0.4. Pure: the
// status server calls it on every scrape with a fresh master.status().
import type { MasterStatus, NodeState, NodeStatus } from '../protocol/status.js';

/** Every NodeState, in the order the state gauge lists them. */
export const NODE_STATES = [
  'never-connected',
  'connecting',
  'initial-sync',
  'idle',
  'syncing',
  'lagging',
  'error',
  'disconnected',
] as const satisfies readonly NodeState[];

// Fails to compile when NodeState gains a member the list above lacks, so the
// one-series-per-state promise cannot silently break.
const allStatesListed: [Exclude<NodeState, (typeof NODE_STATES)[number]>] extends [never] ? true : false = true;
void allStatesListed;

/** Fields a newer master may add; absent ones leave their metric out. */
interface OptionalFigures {
  /** refusals since start; `refusals` only keeps the recent few */
  refusalsTotal?: number;
}

type Labels = Record<string, string>;
interface Sample {
  labels: Labels;
  value: number;
}
interface Family {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  samples: Sample[];
}

export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function renderFamily(f: Family): string {
  let out = `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`;
  for (const s of f.samples) {
    const labels = Object.entries(s.labels)
      .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
      .join(',');
    out += `${f.name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}\n`;
  }
  return out;
}

// A snapshot from a different master version may lack a figure; a missing
// number becomes NaN rather than a misleading 0.
const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);

function perNode(nodes: NodeStatus[], value: (n: NodeStatus) => number): Sample[] {
  return nodes.map((n) => ({ labels: { node: n.name }, value: value(n) }));
}

function nodeFamilies(nodes: NodeStatus[]): Family[] {
  const stateSamples: Sample[] = [];
  for (const n of nodes) {
    const states: string[] = [...NODE_STATES];
    if (!states.includes(n.state)) states.push(n.state);
    for (const st of states) stateSamples.push({ labels: { node: n.name, state: st }, value: st === n.state ? 1 : 0 });
  }
  return [
    { name: 'inosync_node_up', type: 'gauge', help: 'Whether the node is connected (1) or not (0).', samples: perNode(nodes, (n) => (n.connected ? 1 : 0)) },
    { name: 'inosync_node_state', type: 'gauge', help: 'The node state: 1 for the current one, 0 for the others.', samples: stateSamples },
    { name: 'inosync_node_lag_seconds', type: 'gauge', help: 'Age of the oldest change the node has not applied yet.', samples: perNode(nodes, (n) => num(n.lagSeconds)) },
    { name: 'inosync_node_pending_changes', type: 'gauge', help: 'Changes owed to the node, in flight or not yet sent.', samples: perNode(nodes, (n) => num(n.pending)) },
    { name: 'inosync_node_paced', type: 'gauge', help: 'Whether the node is paced (1): it keeps up only by being sent larger catch-up batches less often.', samples: perNode(nodes, (n) => (n.pacedUntil ? 1 : 0)) },
    { name: 'inosync_node_in_flight_batches', type: 'gauge', help: 'Batches sent to the node and not yet applied.', samples: perNode(nodes, (n) => num(n.inFlight)) },
    {
      name: 'inosync_node_syncs_total',
      type: 'counter',
      help: 'Batches the node applied, by result.',
      samples: nodes.flatMap((n) => [
        { labels: { node: n.name, result: 'ok' }, value: num(n.syncs?.ok) },
        { labels: { node: n.name, result: 'failed' }, value: num(n.syncs?.failed) },
      ]),
    },
    { name: 'inosync_node_bytes_total', type: 'counter', help: 'Bytes rsync transferred to the node.', samples: perNode(nodes, (n) => num(n.bytesTotal)) },
    { name: 'inosync_node_files_total', type: 'counter', help: 'Files rsync transferred to the node.', samples: perNode(nodes, (n) => num(n.filesTotal)) },
    {
      name: 'inosync_node_last_sync_duration_seconds',
      type: 'gauge',
      help: 'How long the last successful sync of the node took.',
      // No series until a node has synced: 0 would read as "instant".
      samples: nodes.flatMap((n) => (n.lastSync ? [{ labels: { node: n.name }, value: num(n.lastSync.durationMs) / 1000 }] : [])),
    },
  ];
}

export function renderMetrics(s: MasterStatus): string {
  const nodes = s.nodes ?? [];
  const paths = s.paths ?? [];
  const extra = s as MasterStatus & OptionalFigures;
  const families: Family[] = [
    ...nodeFamilies(nodes),
    { name: 'inosync_batches_total', type: 'counter', help: 'Batches the master has sent.', samples: [{ labels: {}, value: num(s.batches) }] },
    {
      name: 'inosync_watch_errors_total',
      type: 'counter',
      help: 'Watcher errors on the path.',
      samples: paths.map((p) => ({ labels: { path: p.name }, value: num(p.watchErrors) })),
    },
    {
      name: 'inosync_path_paused',
      type: 'gauge',
      help: 'Whether syncing of the path is paused (1), e.g. after its root was replaced.',
      samples: paths.map((p) => ({ labels: { path: p.name }, value: p.paused ? 1 : 0 })),
    },
    { name: 'inosync_rsyncd_up', type: 'gauge', help: 'Whether the rsync daemon agents pull from is running.', samples: [{ labels: {}, value: s.rsyncd?.running ? 1 : 0 }] },
    { name: 'inosync_rsyncd_restarts_total', type: 'counter', help: 'Times the rsync daemon was restarted.', samples: [{ labels: {}, value: num(s.rsyncd?.restarts) }] },
    {
      name: 'inosync_refusals',
      type: 'gauge',
      help: 'Connections refused recently (the master keeps only the last few).',
      samples: [{ labels: {}, value: (s.refusals ?? []).length }],
    },
    ...(typeof extra.refusalsTotal === 'number'
      ? [{ name: 'inosync_refusals_total', type: 'counter' as const, help: 'Connections refused since the master started.', samples: [{ labels: {}, value: extra.refusalsTotal }] }]
      : []),
    { name: 'inosync_uptime_seconds', type: 'gauge', help: 'Seconds since the master started.', samples: [{ labels: {}, value: num(s.uptimeSeconds) }] },
    { name: 'inosync_build_info', type: 'gauge', help: 'Always 1; the label carries the master software version.', samples: [{ labels: { version: String(s.version ?? 'unknown') }, value: 1 }] },
  ];
  return families.map(renderFamily).join('');
}
