// One agent connection on the master: the handshake, then authenticated
// messages. Nothing from the socket is trusted until it has been size-checked,
// signature-checked (after hello), decoded and validated.
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import nacl from 'tweetnacl';
import { decode, encode } from '../protocol/codec.js';
import { open, seal } from '../protocol/envelope.js';
import { CLOSE, connectionId, sameBytes, sealCredentials, type RsyncCredentials } from '../protocol/handshake.js';
import { HANDSHAKE_TIMEOUT_MS, HEARTBEAT_MS, MAX_HANDSHAKE_FRAME } from '../protocol/limits.js';
import {
  NONCE_BYTES,
  parseAgentMessage,
  parseAuth,
  parseHello,
  type AgentMessage,
  type Auth,
  type Welcome,
} from '../protocol/messages.js';
import type { Signer, Verifier } from '../protocol/sign.js';
import { PROTOCOL_VERSION } from '../protocol/version.js';
import type { Logger } from '../common/log.js';

export interface SessionHost {
  readonly signer: Signer;
  readonly session: Uint8Array;
  verifierFor(node: string): Verifier | undefined;
  /** The handshake got as far as naming a known node. */
  onHello(s: AgentSession): void;
  /** Refused: unknown node, bad key, bad protocol. `node` is null when the name was unknown. */
  onRefused(node: string | null, address: string | null, reason: string): void;
  /** Authenticated: return what the welcome must carry. */
  onAuthenticated(s: AgentSession, auth: Auth): { creds: RsyncCredentials; rsyncPort: number; rsyncTls: boolean; paths: Welcome['paths'] };
  onMessage(s: AgentSession, m: AgentMessage): void;
  onClosed(s: AgentSession): void;
}

type Phase = 'hello' | 'auth' | 'ready' | 'closed';

export class AgentSession {
  phase: Phase = 'hello';
  node: string | null = null;
  version = '';
  readonly address: string | null;
  private verifier: Verifier | undefined;
  private readonly masterNonce = new Uint8Array(randomBytes(NONCE_BYTES));
  private conn: Uint8Array | null = null;
  private lastN = -1;
  private n = 0;
  private alive = true;
  private readonly handshakeTimer: NodeJS.Timeout;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(
    readonly ws: WebSocket,
    address: string | null,
    private readonly host: SessionHost,
    private readonly log: Logger,
  ) {
    this.address = address;
    this.handshakeTimer = setTimeout(() => this.close(CLOSE.timeout, 'handshake timeout'), HANDSHAKE_TIMEOUT_MS);
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', (err) => this.log.debug('agent socket error', { address, err }));
    ws.on('pong', () => {
      this.alive = true;
    });
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  /** Sends a pre-sealed frame (a batch signed once for many nodes). */
  sendFrame(frame: Uint8Array): void {
    if (this.phase !== 'ready') return;
    this.ws.send(frame, { binary: true }, (err) => {
      if (err) this.log.debug('send failed', { node: this.node, err });
    });
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  close(code: number, reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    clearTimeout(this.handshakeTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    try {
      this.ws.close(code, reason.slice(0, 120));
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close handshake must not hold the socket.
    setTimeout(() => this.ws.terminate(), 2_000).unref();
  }

  private refuse(reason: string, code: number = CLOSE.unauthorized): void {
    this.host.onRefused(this.node, this.address, reason);
    this.close(code, reason);
  }

  private onFrame(data: unknown, isBinary: boolean): void {
    if (this.phase === 'closed') return;
    const bytes = toBytes(data);
    if (!isBinary || bytes === null) return this.refuse('text frames are not part of the protocol', CLOSE.protocol);
    try {
      if (this.phase === 'hello') this.onHello(bytes);
      else if (this.phase === 'auth') this.onAuth(bytes);
      else this.onReadyFrame(bytes);
    } catch (err) {
      this.log.warn('refusing agent connection', { node: this.node, address: this.address, reason: (err as Error).message });
      this.refuse((err as Error).message, CLOSE.protocol);
    }
  }

  private onHello(bytes: Uint8Array): void {
    if (bytes.length > MAX_HANDSHAKE_FRAME) throw new Error('hello frame too large');
    const hello = parseHello(decode(bytes));
    if (hello.v !== PROTOCOL_VERSION) throw new Error(`protocol version ${hello.v} not supported (this master speaks ${PROTOCOL_VERSION})`);
    const verifier = this.host.verifierFor(hello.name);
    if (!verifier) {
      this.log.warn('refused unknown node', { name: hello.name, address: this.address });
      this.host.onRefused(null, this.address, `unknown node ${JSON.stringify(hello.name)}`);
      this.close(CLOSE.unauthorized, 'unknown node');
      return;
    }
    this.node = hello.name;
    this.version = hello.version;
    this.verifier = verifier;
    this.conn = connectionId(hello.nonce, this.masterNonce);
    this.host.onHello(this);
    const challenge = {
      t: 'challenge',
      v: PROTOCOL_VERSION,
      session: this.host.session,
      nonce: this.masterNonce,
      echo: hello.nonce,
      name: hello.name,
    };
    this.phase = 'auth';
    this.ws.send(seal(this.host.signer, 'master->agent', encode(challenge)), { binary: true });
  }

  private onAuth(bytes: Uint8Array): void {
    if (bytes.length > MAX_HANDSHAKE_FRAME) throw new Error('auth frame too large');
    const body = open(this.verifier!, 'agent->master', bytes);
    if (body === null) {
      this.log.warn('refused node: signature does not match its configured key', { node: this.node, address: this.address });
      return this.refuse('authentication failed: the agent key does not match nodes[].key in the master config');
    }
    const auth = parseAuth(decode(body));
    if (!sameBytes(auth.conn, this.conn!)) return this.refuse('authentication bound to another connection');
    this.lastN = auth.n;
    clearTimeout(this.handshakeTimer);
    const box = nacl.box.keyPair();
    const { creds, rsyncPort, rsyncTls, paths } = this.host.onAuthenticated(this, auth);
    const welcome = {
      t: 'welcome',
      conn: this.conn!,
      n: this.n++,
      node: this.node!,
      session: this.host.session,
      boxKey: box.publicKey,
      creds: sealCredentials(creds, auth.boxKey, box),
      rsyncPort,
      rsyncTls,
      paths,
    };
    this.ws.send(seal(this.host.signer, 'master->agent', encode(welcome)), { binary: true });
    this.phase = 'ready';
    this.heartbeat = setInterval(() => {
      if (!this.alive) {
        this.log.warn('agent stopped answering heartbeats', { node: this.node });
        this.ws.terminate();
        return;
      }
      this.alive = false;
      this.ws.ping();
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private onReadyFrame(bytes: Uint8Array): void {
    const body = open(this.verifier!, 'agent->master', bytes);
    if (body === null) throw new Error('a frame with a bad signature on an authenticated connection');
    const msg = parseAgentMessage(decode(body));
    if (!sameBytes(msg.conn, this.conn!)) throw new Error('a frame bound to another connection');
    if (msg.n <= this.lastN) throw new Error('a replayed frame (counter did not increase)');
    this.lastN = msg.n;
    this.alive = true;
    this.host.onMessage(this, msg);
  }

  private onClose(): void {
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    clearTimeout(this.handshakeTimer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (wasReady || this.node !== null) this.host.onClosed(this);
  }
}

function toBytes(data: unknown): Uint8Array | null {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data) && data.every((d) => d instanceof Uint8Array)) return Buffer.concat(data as Uint8Array[]);
  return null;
}
