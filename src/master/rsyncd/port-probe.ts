// Before the rsync daemon starts: is its address free? After: does it accept
// connections yet?
import { connect, createServer } from 'node:net';
import { unbracket } from '../../common/sockets.js';

const PROBE_TIMEOUT_MS = 1_000;

/** Why listening on host:port failed, as an operator can act on it. */
export function portProblemMessage(host: string, port: number, err: { code?: string; message: string }): string {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'EADDRINUSE':
      return `${where} is already in use (another rsync daemon, or one left by an earlier master?): stop it or choose another rsync.listen.port`;
    case 'EADDRNOTAVAIL':
      return `${host} is not an address of this host: fix rsync.listen.host`;
    case 'EACCES':
      return `not allowed to listen on ${where}: ports below 1024 need root`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve rsync.listen.host "${host}"`;
    default:
      return `cannot listen on ${where}: ${err.message}`;
  }
}

/** Why binding host:port would fail, or null when it is free. */
export function portProblem(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => resolve(portProblemMessage(host, port, err)));
    srv.listen({ host: unbracket(host), port, exclusive: true }, () => srv.close(() => resolve(null)));
  });
}

/** True when a TCP connection to host:port succeeds within a second. */
export function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/** A wildcard address cannot be connected to; its loopback twin reaches the same socket. */
export function probeHost(host: string): string {
  const h = unbracket(host);
  if (h === '0.0.0.0' || h === '') return '127.0.0.1';
  if (h === '::') return '::1';
  return h;
}
