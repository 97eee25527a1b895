// The /status contract: what the master's status listener serves as JSON,
// and what `inosync status`, the metrics and monitoring read. Changing a
// field here changes what operators' scripts see.

export type NodeState =
  | 'never-connected'
  | 'connecting'
  | 'initial-sync'
  | 'idle'
  | 'syncing'
  | 'lagging'
  | 'error'
  | 'disconnected';

export interface NodeError {
  at: string;
  path: string | null;
  exit: number | null;
  kind: string;
  message: string;
}

export interface NodeStatus {
  name: string;
  state: NodeState;
  connected: boolean;
  connectedSince: string | null;
  lastSeen: string | null;
  address: string | null;
  version: string | null;
  lastBatchSent: number | null;
  lastBatchAcked: number | null;
  lastBatchApplied: number | null;
  pending: number;
  inFlight: number;
  /**
   * Set while the node is paced (pacing.ts): it is sent one catch-up batch at
   * a time, no earlier than this or the origin going quiet.
   */
  pacedUntil: string | null;
  lagSeconds: number;
  lastSync: { at: string; durationMs: number; files: number; bytes: number; full: boolean } | null;
  progress: { path: string; percent: number } | null;
  lastError: NodeError | null;
  lastRefusal: { at: string; address: string | null; reason: string } | null;
  syncs: { ok: number; failed: number };
  bytesTotal: number;
  filesTotal: number;
}

export interface MasterStatus {
  version: string;
  session: string;
  startedAt: string;
  uptimeSeconds: number;
  batches: number;
  paths: { name: string; watch: string; backend: string; paused: string | null; watchErrors: number; lastWatchProblem?: { at: string; kind: string; message: string } | null; lastEvent: string | null }[];
  /** `tls`: agents reach the daemon through the master's TLS front */
  rsyncd: { running: boolean; restarts: number; lastError: string | null; tls: boolean };
  refusals: { at: string; node: string | null; address: string | null; reason: string }[];
  /** refusals since start (the list above keeps only the last 20) */
  refusalsTotal?: number;
  nodes: NodeStatus[];
}
