// The account the rsync daemon reads the watched trees as (rsync.user and
// rsync.group): looked up in the system's user database, and checked against
// each tree's modes, so check-config says what the daemon would fail to send.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const DEFAULT_RSYNC_USER = 'inosync';

/** What the daemon's `uid` and `gid` become. It sets no supplementary groups. */
export interface RsyncAccount {
  user: string;
  uid: number;
  gid: number;
}

const ACCOUNT_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/;

/** A user or group as rsync.user/rsync.group accept it: a name or a numeric id. */
export function accountNameProblem(s: string): string | null {
  if (/^\d{1,10}$/.test(s) || ACCOUNT_NAME.test(s)) return null;
  return `"${s}" is not a user or group name; use a name of letters, digits, ".", "_" or "-" (not starting with a digit or "-"), or a numeric id`;
}

/** One entry of `getent DATABASE KEY`, split at ":"; null when there is none. */
function getent(database: 'passwd' | 'group', key: string): string[] | null {
  try {
    const out = execFileSync('getent', [database, key], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 });
    const line = out.split('\n')[0] ?? '';
    return line === '' ? null : line.split(':');
  } catch (err) {
    // getent exits 2 for "no such key"; anything else means it could not ask.
    if ((err as { status?: number }).status === 2) return null;
    throw new Error(`cannot look up ${database} entry "${key}" with getent: ${(err as Error).message}`);
  }
}

/**
 * The uid and gid of `user` (its primary group unless `group` is given), or
 * a problem saying what to do. A numeric user needs no entry in the user
 * database, but then needs `group` (rsync would otherwise switch to the
 * group "nobody").
 */
export function lookupRsyncAccount(user: string, group: string | undefined): RsyncAccount | { problem: string; key: 'user' | 'group' } {
  let uid: number;
  let gid: number | undefined;
  try {
    const pw = /^\d+$/.test(user) ? null : getent('passwd', user);
    if (/^\d+$/.test(user)) uid = Number(user);
    else if (pw === null) {
      return {
        problem: `the user "${user}" does not exist on this machine; create it (useradd --system --no-create-home ` +
          `--shell /usr/sbin/nologin ${user}) or set rsync.user to an account that can read the watched trees`,
        key: 'user',
      };
    } else {
      uid = Number(pw[2]);
      gid = Number(pw[3]);
    }
    if (group !== undefined) {
      if (/^\d+$/.test(group)) gid = Number(group);
      else {
        const gr = getent('group', group);
        if (gr === null) return { problem: `the group "${group}" does not exist on this machine; create it (groupadd --system ${group}) or correct rsync.group`, key: 'group' };
        gid = Number(gr[2]);
      }
    }
  } catch (err) {
    return { problem: (err as Error).message, key: 'user' };
  }
  if (gid === undefined) return { problem: `rsync.user is the numeric id ${user}: set rsync.group too`, key: 'user' };
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return { problem: `the user database gave no numeric uid/gid for "${user}"`, key: 'user' };
  return { user, uid, gid };
}

/** The mode bits that `who` gets on `st`, as the daemon's uid and single gid see them (ACLs aside). */
function allowed(st: { uid: number; gid: number; mode: number }, who: RsyncAccount): number {
  if (who.uid === 0) return 7;
  if (st.uid === who.uid) return (st.mode >> 6) & 7;
  if (st.gid === who.gid) return (st.mode >> 3) & 7;
  return st.mode & 7;
}

const R = 4;
const X = 1;
/** Entries of the tree's top directory looked at: enough to catch a private tree, fast on a huge one. */
const SAMPLE = 200;

/**
 * Why `who` could not read the tree at `root`, or null. Every ancestor must
 * be searchable, the root readable and searchable, and the root's own entries
 * (a sample) readable; deeper files are not walked.
 */
export function unreadableTreeProblem(root: string, who: RsyncAccount): string | null {
  if (who.uid === 0) return null;
  const as = `rsync.user "${who.user}" (uid ${who.uid}, gid ${who.gid})`;
  const parts = root.split('/').filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const dir = '/' + parts.slice(0, i).join('/');
    const st = statOrNull(dir);
    if (st === null) return null; // the directory check reports what is missing
    if ((allowed(st, who) & X) === 0) return `${as} cannot enter ${dir} (mode ${modeOf(st)}), so the daemon cannot read ${root}; allow it (chmod o+x ${dir}) or choose another rsync.user`;
  }
  const st = statOrNull(root);
  if (st === null || !st.isDirectory()) return null;
  if ((allowed(st, who) & (R | X)) !== (R | X)) return `${as} cannot list ${root} (mode ${modeOf(st)}); the daemon would send nothing: allow it or choose another rsync.user`;
  let names: string[];
  try {
    names = fs.readdirSync(root).slice(0, SAMPLE);
  } catch {
    return null;
  }
  const denied: string[] = [];
  for (const n of names) {
    let e: fs.Stats;
    try {
      e = fs.lstatSync(path.join(root, n));
    } catch {
      continue;
    }
    if (e.isSymbolicLink()) continue;
    const need = e.isDirectory() ? R | X : e.isFile() ? R : 0;
    if ((allowed(e, who) & need) !== need) denied.push(n);
  }
  if (denied.length === 0) return null;
  const shown = denied.slice(0, 3).map((n) => JSON.stringify(n)).join(', ');
  return `${as} cannot read ${denied.length} of the first ${names.length} entries of ${root} (${shown}${denied.length > 3 ? ', ...' : ''}); ` +
    'the daemon would skip them and every sync would end in a partial transfer: make them readable or choose another rsync.user';
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function modeOf(st: fs.Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}
