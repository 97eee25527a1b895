// One agent connection on the master: the handshake, then authenticated
// messages. Nothing from the socket is trusted until it has been size-checked,
// counted against its budget (after auth), signature-checked (after hello),
// decoded and validated.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import nacl from 'tweetnacl';
import { decode, encode } from '../protocol/codec.js';
import { open, seal } from '../protocol/envelope.js';
import { CLOSE_REASON_CHARS, ProtocolError } from '../protocol/errors.js';
import type { FrameSocket } from '../protocol/frame-socket.js';
import { CLOSE, connectionId, sameBytes, sealCredentials, type CloseCode, type RsyncCredentials } from '../protocol/handshake.js';
import { AGENT_FRAME_RATE, HANDSHAKE_TIMEOUT_MS, HEARTBEAT_MS, MAX_AGENT_FRAME, MAX_HANDSHAKE_FRAME } from '../protocol/limits.js';
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
import { WsFrameSocket } from '../common/ws-frame-socket.js';
import { realClock, type Clock, type Timer } from '../common/clock.js';
import type { Logger } from '../common/log.js';
import { credit, fullBudget, spend, type Budget, type FrameRate } from './frame-budget.js';

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

export interface AgentSessionOptions {
  clock?: Clock;
  /** a ping this often; no pong (or frame) for a whole interval drops the agent */
  heartbeatMs?: number;
  /** from connection to authenticated */
  handshakeTimeoutMs?: number;
  /** how long a closed peer has to answer the close before its socket is dropped */
  closeGraceMs?: number;
  /** largest frame after the handshake (the transport usually enforces it first) */
  maxFrame?: number;
  /** how many frames an authenticated agent may send (default `AGENT_FRAME_RATE`) */
  frameRate?: FrameRate;
}

/** A peer that never answers the close handshake must not hold the socket longer than this. */
export const CLOSE_GRACE_MS = 2_000;

type Phase = 'hello' | 'auth' | 'ready' | 'closed';

export class AgentSession {
  phase: Phase = 'hello';
  node: string | null = null;
  version = '';
  readonly address: string | null;
  readonly ws: FrameSocket;
  private readonly clock: Clock;
  private readonly heartbeatMs: number;
  private readonly closeGraceMs: number;
  private readonly maxFrame: number;
  private readonly frameRate: FrameRate;
  private budget: Budget | null = null;
  private verifier: Verifier | undefined;
  private readonly masterNonce = new Uint8Array(randomBytes(NONCE_BYTES));
  private conn: Uint8Array | null = null;
  private lastN = -1;
  private n = 0;
  private alive = true;
  private readonly handshakeTimer: Timer;
  private heartbeat: Timer | null = null;

  constructor(
    socket: WebSocket | FrameSocket,
    address: string | null,
    private readonly host: SessionHost,
    private readonly log: Logger,
    opts: AgentSessionOptions = {},
  ) {
    this.address = address;
    this.ws = socket instanceof WebSocket ? new WsFrameSocket(socket) : socket;
    this.clock = opts.clock ?? realClock;
    this.heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
    this.closeGraceMs = opts.closeGraceMs ?? CLOSE_GRACE_MS;
    this.maxFrame = opts.maxFrame ?? MAX_AGENT_FRAME;
    this.frameRate = opts.frameRate ?? AGENT_FRAME_RATE;
    this.handshakeTimer = this.clock.setTimeout(() => this.refuse('handshake timeout: did not authenticate in time', CLOSE.timeout), opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    this.ws.listen({
      frame: (data, isBinary) => this.onFrame(data, isBinary),
      close: () => this.onClose(),
      error: (err) => this.log.debug('agent socket error', { address, err }),
      pong: () => {
        this.alive = true;
      },
    });
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  /** Sends a pre-sealed frame (a batch signed once for many nodes). */
  sendFrame(frame: Uint8Array): void {
    if (this.phase !== 'ready') return;
    this.budget = credit(this.budget!, this.frameRate);
    this.ws.send(frame, (err) => {
      if (err) this.log.debug('send failed', { node: this.node, err });
    });
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  close(code: number, reason: string): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.stopTimers();
    try {
      this.ws.close(code, reason.slice(0, CLOSE_REASON_CHARS));
    } catch {
      this.ws.terminate();
    }
    this.clock.setTimeout(() => this.ws.terminate(), this.closeGraceMs).unref?.();
  }

  private refuse(reason: string, code: CloseCode = CLOSE.unauthorized): void {
    if (this.phase !== 'closed') this.host.onRefused(this.node, this.address, reason);
    this.close(code, reason);
  }

  private onFrame(bytes: Uint8Array, isBinary: boolean): void {
    if (this.phase === 'closed') return;
    if (!isBinary) return this.refuse('text frames are not part of the protocol', CLOSE.protocol);
    // The transport bounds frames too; this holds whatever it is.
    if (bytes.length > this.maxFrame) return this.phase === 'ready' ? this.close(CLOSE.tooBig, 'frame too large') : this.refuse('frame too large', CLOSE.tooBig);
    try {
      if (this.phase === 'hello') this.onHello(bytes);
      else if (this.phase === 'auth') this.onAuth(bytes);
      else this.onReadyFrame(bytes);
    } catch (err) {
      const code = err instanceof ProtocolError ? err.close : CLOSE.protocol;
      // Refusals of who the agent is were logged where they were found.
      if (code === CLOSE.protocol) this.log.warn('refusing agent connection', { node: this.node, address: this.address, reason: (err as Error).message });
      this.refuse((err as Error).message, code);
    }
  }

  private onHello(bytes: Uint8Array): void {
    if (bytes.length > MAX_HANDSHAKE_FRAME) throw new ProtocolError(CLOSE.protocol, 'hello frame too large');
    const hello = parseHello(decode(bytes));
    if (hello.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(CLOSE.protocol, `protocol version ${hello.v} not supported (this master speaks ${PROTOCOL_VERSION})`);
    }
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
    this.ws.send(seal(this.host.signer, 'master->agent', encode(challenge)));
  }

  private onAuth(bytes: Uint8Array): void {
    if (bytes.length > MAX_HANDSHAKE_FRAME) throw new ProtocolError(CLOSE.protocol, 'auth frame too large');
    const body = open(this.verifier!, 'agent->master', bytes);
    if (body === null) {
      this.log.warn('refused node: signature does not match its configured key', { node: this.node, address: this.address });
      throw new ProtocolError(CLOSE.unauthorized, 'authentication failed: the agent key does not match nodes[].key in the master config');
    }
    const auth = parseAuth(decode(body));
    if (!sameBytes(auth.conn, this.conn!)) throw new ProtocolError(CLOSE.unauthorized, 'authentication bound to another connection');
    this.lastN = auth.n;
    this.clock.clearTimeout(this.handshakeTimer);
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
    this.ws.send(seal(this.host.signer, 'master->agent', encode(welcome)));
    this.phase = 'ready';
    this.budget = fullBudget(this.frameRate, this.clock.now());
    this.scheduleHeartbeat();
  }

  private scheduleHeartbeat(): void {
    this.heartbeat = this.clock.setTimeout(() => {
      this.heartbeat = null;
      if (this.phase !== 'ready') return;
      if (!this.alive) {
        this.log.warn('agent stopped answering heartbeats', { node: this.node });
        this.ws.terminate();
        return;
      }
      this.alive = false;
      this.ws.ping();
      this.scheduleHeartbeat();
    }, this.heartbeatMs);
    this.heartbeat.unref?.();
  }

  private onReadyFrame(bytes: Uint8Array): void {
    // Before the signature: a flood must cost no more than this comparison.
    const left = spend(this.budget!, this.frameRate, this.clock.now(), bytes.length);
    if (left === null) {
      this.log.warn('agent sent more frames than any real agent does; closing its connection', { node: this.node, address: this.address });
      throw new ProtocolError(CLOSE.tooMany, `too many frames: more than ${this.frameRate.perSecond} a second after a burst of ${this.frameRate.burst}`);
    }
    this.budget = left;
    const body = open(this.verifier!, 'agent->master', bytes);
    if (body === null) throw new ProtocolError(CLOSE.protocol, 'a frame with a bad signature on an authenticated connection');
    const msg = parseAgentMessage(decode(body));
    if (!sameBytes(msg.conn, this.conn!)) throw new ProtocolError(CLOSE.protocol, 'a frame bound to another connection');
    if (msg.n <= this.lastN) throw new ProtocolError(CLOSE.protocol, 'a replayed frame (counter did not increase)');
    this.lastN = msg.n;
    this.alive = true;
    this.host.onMessage(this, msg);
  }

  private stopTimers(): void {
    this.clock.clearTimeout(this.handshakeTimer);
    if (this.heartbeat) this.clock.clearTimeout(this.heartbeat);
    this.heartbeat = null;
  }

  private onClose(): void {
    const wasReady = this.phase === 'ready';
    // A peer gone before authenticating is an unauthenticated attempt like
    // any other: counted, never shown as the node's own activity.
    if (this.phase === 'hello' || this.phase === 'auth') {
      this.host.onRefused(this.node, this.address, this.phase === 'hello' ? 'closed before its hello' : 'closed before authenticating');
    }
    this.phase = 'closed';
    this.stopTimers();
    if (wasReady || this.node !== null) this.host.onClosed(this);
  }
}
