// How rsync reaches a master whose rsync port speaks TLS (master/rsync-tls.ts):
// rsync runs RSYNC_CONNECT_PROG through /bin/sh instead of opening a socket,
// and `openssl s_client` carries its protocol over TLS. Pure: builds the
// command line; the certificate is checked like the websocket's.
import { isIP } from 'node:net';

export interface TlsConnect {
  openssl: string;
  host: string;
  port: number;
  /** PEM CA to trust instead of the system's (the agent's master.ca) */
  ca?: string;
}

/** A word /bin/sh reads back as exactly `s`. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_@+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The value for RSYNC_CONNECT_PROG. rsync expands `%H` and `%%` in it before
 * the shell sees it, so every `%` is doubled; the host is given here, quoted,
 * rather than through `%H`.
 */
export function tlsConnectProg(c: TlsConnect): string {
  const host = c.host.replace(/^\[(.*)\]$/, '$1');
  const argv = [
    c.openssl,
    's_client',
    // No banner or certificate dump on stdout: it is rsync's stream.
    '-quiet',
    // -quiet would keep the connection open after rsync is gone; end with it.
    '-no_ign_eof',
    // A read starting with "Q" or "R" must not be taken for a command.
    '-nocommands',
    '-verify_quiet',
    '-verify_return_error',
    isIP(host) ? '-verify_ip' : '-verify_hostname',
    host,
    ...(isIP(host) ? [] : ['-servername', host]),
    ...(c.ca !== undefined ? ['-CAfile', c.ca, '-no-CApath', '-no-CAstore'] : []),
    '-connect',
    isIP(host) === 6 ? `[${host}]:${c.port}` : `${host}:${c.port}`,
  ];
  // exec: rsync's signals reach openssl itself, not a shell waiting on it.
  return ('exec ' + argv.map(shellWord).join(' ')).replace(/%/g, '%%');
}
