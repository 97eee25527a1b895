// The rsync daemon's users: one per node, made up afresh at every master
// start. The daemon only knows this run's secrets file, so credentials an
// agent kept from an earlier run stop working when the master restarts.
import { randomBytes } from 'node:crypto';

export interface RsyncCredential {
  user: string;
  password: string;
}

const NODE_NAME_RE = /^[A-Za-z0-9._-]{1,64}$/;
/** 256 bits: nothing to gain from guessing, even at line rate. */
const PASSWORD_BYTES = 32;
/** Distinguishes runs in the daemon's log; not a secret. */
const USER_SUFFIX_BYTES = 4;

/**
 * node name -> credential. User names look like `inosync-web1-3fa9c2d1`: the
 * node makes auth failures in the daemon's log attributable, and the per-run
 * suffix makes an agent still using an earlier run's credentials show up as
 * an unknown user rather than as a wrong password.
 */
export function makeCredentials(nodeNames: readonly string[]): Map<string, RsyncCredential> {
  const out = new Map<string, RsyncCredential>();
  const suffix = randomBytes(USER_SUFFIX_BYTES).toString('hex');
  for (const node of nodeNames) {
    // The user name goes into rsyncd.conf's "auth users" list and the secrets
    // file, where a space, comma, colon or "@" would change its meaning.
    if (typeof node !== 'string' || !NODE_NAME_RE.test(node)) {
      throw new Error(`node name ${JSON.stringify(String(node).slice(0, 100))} cannot become an rsync user; use 1-64 of A-Z a-z 0-9 . _ -`);
    }
    if (out.has(node)) throw new Error(`node "${node}" is listed twice; each node needs its own rsync user`);
    out.set(node, {
      user: `inosync-${node}-${suffix}`,
      // base64url: no padding, no "/" or "+", nothing the secrets file or an
      // environment variable could mangle.
      password: randomBytes(PASSWORD_BYTES).toString('base64url'),
    });
  }
  return out;
}
