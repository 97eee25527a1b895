// The master's /status document, assembled from the parts that keep each figure.
import type { MasterStatus, NodeStatus } from '../protocol/status.js';
import { SOFTWARE_VERSION } from '../protocol/version.js';

export interface StatusParts {
  now: number;
  session: Uint8Array;
  startedAt: number;
  batches: number;
  paths: MasterStatus['paths'];
  rsyncd: { running: boolean; restarts: number; lastError?: string | null | undefined } | null;
  rsyncTls: boolean;
  refusals: MasterStatus['refusals'];
  refusalsTotal: number;
  nodes: NodeStatus[];
}

export function assembleStatus(p: StatusParts): MasterStatus {
  const rs = p.rsyncd ?? { running: false, restarts: 0, lastError: null };
  return {
    version: SOFTWARE_VERSION,
    session: Buffer.from(p.session).toString('hex'),
    startedAt: new Date(p.startedAt).toISOString(),
    uptimeSeconds: Math.round((p.now - p.startedAt) / 1000),
    batches: p.batches,
    paths: p.paths,
    rsyncd: { running: rs.running, restarts: rs.restarts, lastError: rs.lastError ?? null, tls: p.rsyncTls },
    refusals: [...p.refusals],
    refusalsTotal: p.refusalsTotal,
    nodes: p.nodes,
  };
}
