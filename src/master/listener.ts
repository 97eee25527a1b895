// Where agents connect: the websocket listener, and who may wait in its
// handshake. What a session says once admitted is the master's business.
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../common/log.js';
import { MAX_AGENT_FRAME } from '../protocol/limits.js';
import { makeRoom, normalizeAddress } from './room.js';

/** Unauthenticated connections allowed at once, in all and per address. */
export const MAX_HANDSHAKES = 256;
export const MAX_HANDSHAKES_PER_ADDRESS = 16;

/**
 * Raw sockets before their websocket upgrade, in all and per address, and how
 * long one may take to upgrade (TLS handshake and HTTP request included). The
 * handshake table above only starts after the upgrade: without these, idle or
 * half-sent requests stayed open for Node's own timeouts (up to minutes).
 */
export const MAX_UPGRADING = 256;
export const MAX_UPGRADING_PER_ADDRESS = 32;
export const UPGRADE_TIMEOUT_MS = 5_000;

/** What the listener needs of a session in its handshake. */
export interface Handshaking {
  readonly address: string | null;
  readonly ws: { terminate(): void };
}

/**
 * Which handshaking connection makes room for a new one from `address`, or
 * null when there is room (room.ts: the oldest goes). `waiting` is oldest
 * first.
 */
export function makeRoomFor<S extends { readonly address: string | null }>(waiting: Iterable<S>, address: string | null): S | null {
  const held = [...waiting].map((s) => ({ address: s.address ?? '', evictable: true, s }));
  const room = makeRoom(held, address ?? '', { total: MAX_HANDSHAKES, perAddress: MAX_HANDSHAKES_PER_ADDRESS });
  return room.admit ? (room.evict?.s ?? null) : null;
}

export interface ListenerOptions<S extends Handshaking> {
  host: string;
  port: number;
  tls?: { cert: string; key: string } | undefined;
  log: Logger;
  /** false once the master stops: new connections are cut at once */
  open: () => boolean;
  /** turns a new connection into a session */
  accept: (ws: WebSocket, address: string | null) => S;
  /** how long a TCP connection may take to upgrade; default UPGRADE_TIMEOUT_MS */
  upgradeTimeoutMs?: number;
}

interface Upgrading {
  readonly address: string;
  readonly evictable: true;
  readonly key: string;
  readonly socket: Socket;
  readonly timer: NodeJS.Timeout;
}

export class AgentListener<S extends Handshaking> {
  /** sessions still in their handshake, oldest first */
  readonly handshaking = new Set<S>();
  /** raw sockets not yet upgraded, by remote address and port, oldest first */
  private readonly upgrading = new Map<string, Upgrading>();
  private server: HttpServer | HttpsServer | null = null;
  private wss: WebSocketServer | null = null;

  constructor(private readonly o: ListenerOptions<S>) {}

  async start(): Promise<void> {
    const tls = this.o.tls;
    // Node's own bounds as a second line; the upgrade deadline below is the first.
    const http = { headersTimeout: UPGRADE_TIMEOUT_MS, requestTimeout: UPGRADE_TIMEOUT_MS, connectionsCheckingInterval: 1_000, keepAliveTimeout: 1_000 };
    const server = tls
      ? createHttpsServer({ ...http, cert: readFileSync(tls.cert), key: readFileSync(tls.key), handshakeTimeout: UPGRADE_TIMEOUT_MS })
      : createHttpServer(http);
    server.on('connection', (socket: Socket) => this.onSocket(socket));
    server.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('inosync master: websocket only\n');
    });
    const wss = new WebSocketServer({ server, maxPayload: MAX_AGENT_FRAME, perMessageDeflate: false, clientTracking: false });
    wss.on('error', (err) => this.o.log.error('websocket server error', { err }));
    wss.on('connection', (ws, req) => {
      this.upgraded(req.socket as Socket);
      this.onConnection(ws, req.socket.remoteAddress ?? null);
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.o.log.error('listener error', { err }));
    this.server = server;
    this.wss = wss;
  }

  get port(): number | null {
    const addr = this.server?.address();
    return typeof addr === 'object' && addr !== null ? addr.port : null;
  }

  /** A renewed certificate for connections from now on (TLS only). */
  setCertificate(pair: { cert: Buffer; key: Buffer }): void {
    (this.server as HttpsServer | null)?.setSecureContext(pair);
  }

  /** A new TCP connection, before TLS and HTTP: capped and given UPGRADE_TIMEOUT_MS to upgrade. */
  private onSocket(socket: Socket): void {
    socket.on('error', () => undefined);
    const address = normalizeAddress(socket.remoteAddress ?? '');
    const room = makeRoom(this.upgrading.values(), address, { total: MAX_UPGRADING, perAddress: MAX_UPGRADING_PER_ADDRESS });
    if (!room.admit) return void socket.destroy();
    if (room.evict) {
      this.o.log.debug('too many connections waiting to upgrade; dropping the oldest', { address: room.evict.address });
      this.dropUpgrading(room.evict);
    }
    const key = socketKey(socket);
    const timer = setTimeout(() => {
      const u = this.upgrading.get(key);
      if (u) this.dropUpgrading(u);
    }, this.o.upgradeTimeoutMs ?? UPGRADE_TIMEOUT_MS);
    timer.unref();
    this.upgrading.set(key, { address, evictable: true, key, socket, timer });
    socket.once('close', () => {
      const u = this.upgrading.get(key);
      if (u?.socket === socket) this.forgetUpgrading(key, u);
    });
  }

  private upgraded(socket: Socket): void {
    const key = socketKey(socket);
    const u = this.upgrading.get(key);
    if (u) this.forgetUpgrading(key, u);
  }

  private dropUpgrading(u: Upgrading): void {
    this.forgetUpgrading(u.key, u);
    u.socket.destroy();
  }

  private forgetUpgrading(key: string, u: Upgrading): void {
    clearTimeout(u.timer);
    if (this.upgrading.get(key) === u) this.upgrading.delete(key);
  }

  private onConnection(ws: WebSocket, address: string | null): void {
    ws.on('error', () => undefined);
    if (!this.o.open()) return ws.terminate();
    const oldest = makeRoomFor(this.handshaking, address);
    if (oldest) {
      this.o.log.debug('too many unauthenticated connections; dropping the oldest', { address: oldest.address });
      this.handshaking.delete(oldest);
      oldest.ws.terminate();
    }
    const s = this.o.accept(ws, address);
    this.handshaking.add(s);
    ws.once('close', () => this.handshaking.delete(s));
  }

  async close(): Promise<void> {
    for (const u of [...this.upgrading.values()]) this.dropUpgrading(u);
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.wss?.close();
      this.server.close(() => resolve());
      this.server.closeAllConnections?.();
    });
  }
}

/** The raw TCP socket and the TLS socket over it share this. */
function socketKey(s: Socket): string {
  return `${s.remoteAddress ?? ''}|${s.remotePort ?? ''}`;
}
