// The rsync daemon behind TLS. rsync's daemon protocol is plain text: file
// names, contents and the challenge-response all cross the wire in the clear.
// With `tls` configured, the daemon listens on loopback only and this front
// takes the public rsync port, terminating TLS with the master's certificate
// and relaying each connection to the daemon. Agents reach it through a
// tunnel of their own (agent/tls-tunnel.ts).
import { connect, createServer as createTcpServer } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { listenOn, SocketPairs } from '../../common/sockets.js';

/** A client that has not finished its TLS handshake by then is dropped. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface RsyncTlsFrontOptions {
  host: string;
  port: number;
  cert: Buffer;
  key: Buffer;
  /** where the rsync daemon listens (loopback) */
  backend: { host: string; port: number };
  onError?: (what: string, err: Error) => void;
}

export class RsyncTlsFront {
  private server: Server | null = null;
  private readonly pairs = new SocketPairs();

  constructor(private readonly opts: RsyncTlsFrontOptions) {}

  async start(): Promise<void> {
    const { host, port, cert, key } = this.opts;
    const server = createServer({ cert, key, handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS, minVersion: 'TLSv1.2' });
    server.on('secureConnection', (s) => this.relay(s));
    // Failed handshakes (port scanners, clients without the CA) are routine.
    server.on('tlsClientError', (_err, s) => s.destroy());
    await listenOn(server, { host, port });
    server.on('error', (err) => this.opts.onError?.('TLS listener', err));
    this.server = server;
  }

  private relay(front: TLSSocket): void {
    const back = connect(this.opts.backend);
    back.once('error', (err) => this.opts.onError?.('connection to the rsync daemon', err));
    this.pairs.join(front, back);
    front.pipe(back);
    back.pipe(front);
  }

  /** A renewed certificate: new connections present it, open ones keep theirs. */
  setCertificate(cert: Buffer, key: Buffer): void {
    this.server?.setSecureContext({ cert, key });
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.pairs.destroyAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** A loopback port free right now, for the daemon behind the front (rsync cannot take port 0). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createTcpServer();
    listenOn(srv, { host: '127.0.0.1', port: 0 }).then(() => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    }, reject);
  });
}
