// A watched root that vanished, became unreadable, or whose filesystem was
// unmounted looks to rsync exactly like "everything was deleted". Before any
// sync of a path the master asks this guard whether the root is really there.
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

export interface RootIdentity {
  dev: number;
}

export type RootHealth = { ok: true; identity: RootIdentity } | { ok: false; reason: string };

export function checkRoot(root: string, expected: RootIdentity | null, marker: string | undefined): RootHealth {
  let st;
  try {
    st = statSync(root);
  } catch (err) {
    return { ok: false, reason: `watched root ${root} is gone (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  if (!st.isDirectory()) return { ok: false, reason: `watched root ${root} is no longer a directory` };
  try {
    accessSync(root, constants.R_OK | constants.X_OK);
  } catch {
    return { ok: false, reason: `watched root ${root} is not readable` };
  }
  if (expected !== null && st.dev !== expected.dev) {
    return { ok: false, reason: `watched root ${root} is on another filesystem than at start (unmounted?)` };
  }
  if (marker !== undefined) {
    try {
      statSync(join(root, marker));
    } catch {
      return { ok: false, reason: `marker file ${join(root, marker)} is missing (source not mounted?)` };
    }
  }
  return { ok: true, identity: { dev: st.dev } };
}
