// How rsync reaches a master whose rsync port speaks TLS (master/rsyncd/front.ts).
// rsync has no TLS of its own, so the agent listens on a loopback port and
// carries each connection rsync opens there to the master over TLS, checked
// against master.ca like the websocket. Doing it in this process, rather than
// through an `openssl s_client` per run, costs no process start and sets
// TCP_NODELAY, without which rsync's small exchanges stall on delayed ACKs.
import { createServer, isIP, type Server, type Socket } from 'node:net';
import { connect } from 'node:tls';
import { listenOn, SocketPairs, unbracket } from '../common/sockets.js';

export interface TlsTarget {
  host: string;
  port: number;
}

export interface TlsTunnelOptions {
  /** PEM CA to trust instead of the system's */
  ca?: Buffer;
  /** a TLS failure (certificate, handshake): rsync itself only sees the connection close */
  onError: (err: Error, target: TlsTarget) => void;
  handshakeTimeoutMs?: number;
}

export class TlsTunnel {
  private server: Server | null = null;
  private readonly pairs = new SocketPairs();
  /** where connections go; set from the master's welcome */
  target: TlsTarget | null = null;
  /** the last session the master gave us, resumed to skip a full handshake on each rsync run */
  private session: { key: string; data: Buffer } | null = null;
  /** connections that resumed a session (for tests and debugging) */
  resumed = 0;

  constructor(private readonly opts: TlsTunnelOptions) {}

  /** Starts listening on 127.0.0.1; resolves with the port rsync should connect to. */
  async listen(): Promise<number> {
    const server = createServer((local) => this.carry(local));
    await listenOn(server, { host: '127.0.0.1', port: 0 });
    this.server = server;
    return this.port;
  }

  get port(): number {
    const addr = this.server?.address();
    if (typeof addr !== 'object' || addr === null) throw new Error('the TLS tunnel is not listening');
    return addr.port;
  }

  private carry(local: Socket): void {
    const target = this.target;
    if (target === null) {
      local.destroy();
      return;
    }
    const host = unbracket(target.host);
    const key = `${host}:${target.port}`;
    const remote = connect({
      ...(this.session?.key === key ? { session: this.session.data } : {}),
      host,
      port: target.port,
      // SNI takes names only; an address is still checked against the certificate's IP entries.
      ...(isIP(host) ? {} : { servername: host }),
      ...(this.opts.ca ? { ca: this.opts.ca } : {}),
      minVersion: 'TLSv1.2',
    });
    remote.setTimeout(this.opts.handshakeTimeoutMs ?? 10_000, () => remote.destroy(new Error(`no TLS handshake with ${host}:${target.port} within the timeout`)));
    remote.once('secureConnect', () => {
      remote.setTimeout(0);
      if (remote.isSessionReused()) this.resumed++;
      local.pipe(remote);
      remote.pipe(local);
    });
    remote.on('session', (data: Buffer) => (this.session = { key, data }));
    remote.once('error', (err) => {
      this.session = null;
      this.opts.onError(err, target);
    });
    this.pairs.join(local, remote);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.pairs.destroyAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
