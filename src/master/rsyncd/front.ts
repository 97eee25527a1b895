// The rsync port. rsync counts `max connections` and forks a root child as
// soon as a client connects and names a module, before it authenticates: 16
// idle anonymous sockets used to stop every mirror. So the daemon listens on
// loopback only, and this front takes the public port in every mode. It
// admits a connection only from an address that has an authenticated agent
// session on the websocket port, caps connections per session and in all,
// and gives each one PREAUTH_TIMEOUT_MS to pass rsync's authentication
// ("@RSYNCD: OK" from the daemon) before it is closed; a full table makes
// room by closing its oldest unauthenticated connection. All of it happens
// before the daemon is reached, so nothing is forked for a refused client.
// With `tls` it also terminates TLS with the master's certificate (rsync's
// protocol is plain text); agents reach it through agent/tls-tunnel.ts.
import { connect, createServer, type Server, type Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { listenOn, SocketPairs } from '../../common/sockets.js';
import { makeRoom, normalizeAddress } from '../room.js';

/** A client that has not passed rsync's authentication by then (TLS handshake included) is dropped. */
export const PREAUTH_TIMEOUT_MS = 10_000;
/** connections one authenticated session may hold (an agent runs one rsync at a time, plus a retry) */
export const CONNECTIONS_PER_SESSION = 8;
/** connections the front holds in all */
export const MAX_FRONT_CONNECTIONS = 64;
/** what the daemon allows per module: above the front's cap, so a closing connection's slot never blocks a new one */
export const DAEMON_MAX_CONNECTIONS = MAX_FRONT_CONNECTIONS + 32;

/** The daemon's answer once a client authenticated for a module. */
const AUTH_OK = Buffer.from('\n@RSYNCD: OK\n');
/** the greeting, the module line and the challenge fit well within this */
const SCAN_LIMIT = 8192;

export interface RsyncFrontOptions {
  host: string;
  port: number;
  /** where the rsync daemon listens (loopback) */
  backend: { host: string; port: number };
  tls?: { cert: Buffer; key: Buffer } | undefined;
  maxConnections?: number;
  perSession?: number;
  preAuthTimeoutMs?: number;
  onError?: (what: string, err: Error) => void;
  /** a connection refused or closed before authenticating */
  onDropped?: (address: string, reason: string) => void;
}

interface Conn {
  readonly address: string;
  readonly front: Socket;
  back: Socket | null;
  authed: boolean;
  readonly evictable: boolean;
  timer: NodeJS.Timeout;
}

export class RsyncFront {
  private server: Server | null = null;
  private readonly pairs = new SocketPairs();
  /** oldest first */
  private readonly conns = new Set<Conn>();
  /** authenticated websocket sessions -> their address */
  private readonly sessions = new Map<object, string>();
  private context: SecureContext | null;

  constructor(private readonly opts: RsyncFrontOptions) {
    this.context = opts.tls ? makeContext(opts.tls.cert, opts.tls.key) : null;
  }

  get tls(): boolean {
    return this.context !== null;
  }

  /** An agent authenticated from `address`: connections from there may use the daemon. */
  admit(session: object, address: string | null): void {
    if (address !== null) this.sessions.set(session, normalizeAddress(address));
  }

  /** Its session ended; its connections already open finish what they do. */
  release(session: object): void {
    this.sessions.delete(session);
  }

  /** The port it listens on, once started. */
  get port(): number | null {
    const addr = this.server?.address();
    return typeof addr === 'object' && addr !== null ? addr.port : null;
  }

  /** Connections held now (tests, status). */
  get connections(): number {
    return this.conns.size;
  }

  async start(): Promise<void> {
    const { host, port } = this.opts;
    const server = createServer({ noDelay: true }, (s) => this.onConnection(s));
    await listenOn(server, { host, port });
    server.on('error', (err) => this.opts.onError?.('rsync listener', err));
    this.server = server;
  }

  private sessionsAt(address: string): number {
    let n = 0;
    for (const a of this.sessions.values()) if (a === address) n++;
    return n;
  }

  private onConnection(raw: Socket): void {
    raw.on('error', () => undefined);
    const address = normalizeAddress(raw.remoteAddress ?? '');
    const total = this.opts.maxConnections ?? MAX_FRONT_CONNECTIONS;
    const perAddress = Math.min(total, this.sessionsAt(address) * (this.opts.perSession ?? CONNECTIONS_PER_SESSION));
    const room = makeRoom(this.conns, address, { total, perAddress });
    if (!room.admit) {
      this.opts.onDropped?.(address, room.reason);
      // A plain rsync client prints this line; a TLS one only sees the close.
      if (this.context === null && perAddress === 0) raw.end('@ERROR: no authenticated inosync agent at this address\n', () => raw.destroy());
      else raw.destroy();
      return;
    }
    if (room.evict) this.drop(room.evict, 'evicted to make room');
    const conn: Conn = {
      address,
      front: raw,
      back: null,
      authed: false,
      get evictable() {
        return !this.authed;
      },
      timer: setTimeout(() => {
        if (!conn.authed) this.drop(conn, 'did not authenticate in time');
      }, this.opts.preAuthTimeoutMs ?? PREAUTH_TIMEOUT_MS),
    };
    conn.timer.unref();
    this.conns.add(conn);
    raw.once('close', () => this.forget(conn));
    if (this.context === null) {
      this.relay(conn, raw);
      return;
    }
    const tls = new TLSSocket(raw, { isServer: true, secureContext: this.context });
    tls.on('error', () => raw.destroy()); // failed handshakes (scanners, clients without the CA) are routine
    tls.once('secure', () => this.relay(conn, tls));
  }

  private relay(conn: Conn, front: Socket): void {
    if (!this.conns.has(conn)) {
      front.destroy();
      return;
    }
    const back = connect(this.opts.backend);
    conn.back = back;
    back.once('error', (err) => this.opts.onError?.('connection to the rsync daemon', err));
    let seen = Buffer.alloc(0);
    const scan = (d: Buffer): void => {
      seen = Buffer.concat([seen, d]);
      if (seen.includes(AUTH_OK)) {
        conn.authed = true;
        clearTimeout(conn.timer);
      }
      if (conn.authed || seen.length > SCAN_LIMIT) back.off('data', scan);
    };
    back.on('data', scan);
    this.pairs.join(front, back);
    front.pipe(back);
    back.pipe(front);
  }

  private drop(conn: Conn, reason: string): void {
    this.opts.onDropped?.(conn.address, reason);
    this.forget(conn);
    conn.front.destroy();
    conn.back?.destroy();
  }

  private forget(conn: Conn): void {
    clearTimeout(conn.timer);
    this.conns.delete(conn);
  }

  /** A renewed certificate: new connections present it, open ones keep theirs. */
  setCertificate(cert: Buffer, key: Buffer): void {
    if (this.context !== null) this.context = makeContext(cert, key);
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of [...this.conns]) this.drop(c, 'stopping');
    this.pairs.destroyAll();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function makeContext(cert: Buffer, key: Buffer): SecureContext {
  return createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
}

/** A loopback port free right now, for the daemon behind the front (rsync cannot take port 0). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    listenOn(srv, { host: '127.0.0.1', port: 0 }).then(() => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    }, reject);
  });
}
