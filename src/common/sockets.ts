// Socket plumbing shared by the two TLS relays (master/rsyncd/front.ts on the
// master, agent/tls-tunnel.ts on the agent).
import type { Server, Socket } from 'node:net';

/** How long a socket whose other side closed may take to flush and close. */
const LINGER_MS = 5_000;

/** "[::1]" -> "::1": URLs and config bracket IPv6 addresses, sockets take them bare. */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** Resolves once `server` listens, rejects with the listen error (EADDRINUSE...). */
export function listenOn(server: Server, opts: { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: unbracket(opts.host), port: opts.port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Sockets joined two by two, both ways. When one of a pair closes, what it
 * said last still reaches the other, which is then ended and, if it does not
 * close by itself, destroyed. rsync's small request/response exchanges would
 * stall on Nagle, so every socket gets TCP_NODELAY.
 */
export class SocketPairs {
  private readonly open = new Set<Socket>();

  /** The caller starts the flow (`a.pipe(b)`, `b.pipe(a)`) once both are ready. */
  join(a: Socket, b: Socket): void {
    for (const [s, other] of [[a, b], [b, a]] as const) {
      s.setNoDelay(true);
      this.open.add(s);
      s.on('error', () => undefined); // a reset peer: 'close' follows
      s.once('close', () => {
        this.open.delete(s);
        other.end();
        setTimeout(() => other.destroy(), LINGER_MS).unref();
      });
    }
  }

  destroyAll(): void {
    for (const s of this.open) s.destroy();
  }
}
