// What a reloaded master config changes. Only `nodes` is applied to a running
// master (adding a mirror must not cost every other mirror a reconnect and a
// full sync); everything else takes a restart, and the operator is told which.
import { isDeepStrictEqual } from 'node:util';
import type { MasterConfig } from '../config/types.js';

export interface NodesChange {
  added: string[];
  removed: string[];
  /** same name, new public key: its sessions and rsync credentials must go */
  rekeyed: string[];
}

export function nodesChange(before: MasterConfig['nodes'], after: MasterConfig['nodes']): NodesChange {
  const was = new Map(before.map((n) => [n.name, n.key]));
  const now = new Map(after.map((n) => [n.name, n.key]));
  return {
    added: after.filter((n) => !was.has(n.name)).map((n) => n.name),
    removed: before.filter((n) => !now.has(n.name)).map((n) => n.name),
    rekeyed: after.filter((n) => was.has(n.name) && was.get(n.name) !== n.key).map((n) => n.name),
  };
}

/**
 * Top-level keys whose change takes a restart: all but `nodes`, and `tls`
 * as long as it stays set (its files are read again: a renewed certificate).
 */
export function restartOnlyChanges(before: MasterConfig, after: MasterConfig): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  keys.delete('nodes');
  keys.delete('file');
  if (before.tls && after.tls) keys.delete('tls');
  return [...keys].filter((k) => !isDeepStrictEqual(before[k as keyof MasterConfig], after[k as keyof MasterConfig])).sort();
}
