// What the agent refuses in a welcome it has already verified as the master's:
// a signed welcome can still come from a compromised or misconfigured master,
// and what it says becomes rsync's arguments. Pure.
import { excludePatternProblem } from '../rsync/excludes.js';
import type { RsyncCredentials } from '../protocol/handshake.js';
import type { Welcome } from '../protocol/messages.js';

export interface WelcomeRules {
  /** the agent reached the master over wss:// */
  overTls: boolean;
  /** master.allowPlainRsync in the agent config */
  allowPlainRsync: boolean;
}

/** Why this agent must not follow the welcome, or null. */
export function welcomeProblem(w: Welcome, rules: WelcomeRules): string | null {
  if (w.rsyncTls && !rules.overTls) {
    return 'the master serves rsync over TLS, but this agent reached it without TLS; use a wss:// url';
  }
  if (rules.overTls && !w.rsyncTls && !rules.allowPlainRsync) {
    // The files would travel in clear, and a man in the middle could change
    // them, while the operator chose wss:// to avoid exactly that.
    return 'the master (reached over wss://) serves rsync without TLS (rsync.tls: false in its config): refusing to pull files in clear; '
      + 'turn rsync.tls back on in the master config, or set master.allowPlainRsync: true in this agent config if the network between them is trusted';
  }
  for (const p of w.paths) {
    for (const e of p.exclude) {
      const problem = excludePatternProblem(e);
      if (problem !== null) return `the master sent path ${p.name} an exclude pattern rsync cannot use safely, ${JSON.stringify(e.slice(0, 200))}: ${problem}`;
    }
  }
  return null;
}

/**
 * Why the boxed credentials cannot be handed to rsync, or null. The user goes
 * into the rsync:// URL and the password into the environment: a NUL would
 * make every spawn fail (a retry loop), an "@" or "/" would change the URL.
 * The master makes them from the node name and base64url.
 */
export function credentialsProblem(c: RsyncCredentials): string | null {
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(c.user)) return `the master sent an rsync user name that cannot go into an rsync:// URL: ${JSON.stringify(c.user.slice(0, 100))}`;
  if (!/^[\x21-\x7e]{1,512}$/.test(c.password)) return 'the master sent an rsync password rsync cannot take (empty, too long, or not printable ASCII)';
  return null;
}
