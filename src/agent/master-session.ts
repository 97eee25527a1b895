// One connection to the master, as the agent sees it: the handshake (the
// master must prove it holds the configured key), then signed batches, each
// checked before anything is applied. The peer of the master's AgentSession.
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { decode, encode } from '../protocol/codec.js';
import { open, seal } from '../protocol/envelope.js';
import { CLOSE_REASON_CHARS, ProtocolError } from '../protocol/errors.js';
import type { FrameSocket } from '../protocol/frame-socket.js';
import { CLOSE, connectionId, openCredentials, sameBytes, type RsyncCredentials } from '../protocol/handshake.js';
import { HANDSHAKE_TIMEOUT_MS, HEARTBEAT_MS, MAX_MASTER_FRAME } from '../protocol/limits.js';
import { NONCE_BYTES, parseBatch, parseChallenge, parseWelcome, type Batch, type Welcome } from '../protocol/messages.js';
import type { Signer, Verifier } from '../protocol/sign.js';
import { PROTOCOL_VERSION, SOFTWARE_VERSION } from '../protocol/version.js';
import { realClock, type Clock, type Timer } from '../common/clock.js';
import type { Logger } from '../common/log.js';

export interface MasterSessionHost {
  /** The master run followed so far and the highest batch seq received in it. */
  position(): { session: Uint8Array | null; seq: number };
  /** The master proved itself. May throw: the handshake then fails. */
  onWelcome(s: MasterSession, w: Welcome, creds: RsyncCredentials): void;
  /** Batches may come now. */
  onReady(s: MasterSession): void;
  /** A batch that passed every check, already acknowledged. */
  onBatch(s: MasterSession, b: Batch): void;
  /** A frame refused (reported to the master once authenticated). */
  onRejected(s: MasterSession, reason: string): void;
  onClosed(s: MasterSession, code: number, reason: string, wasReady: boolean): void;
}

export interface MasterSessionOptions {
  /** this agent's node name */
  name: string;
  signer: Signer;
  /** the key the master must prove it holds */
  master: Verifier;
  log: Logger;
  /** for logs */
  url: string;
  clock?: Clock;
  /** the master pings this often; none for two intervals in a row drops the connection */
  heartbeatMs?: number;
  /** from connection to welcome */
  handshakeTimeoutMs?: number;
  /** largest frame accepted (the transport usually enforces it first) */
  maxFrame?: number;
}

type Phase = 'challenge' | 'welcome' | 'ready' | 'closed';

/** A reject's reason, cut to fit the message's bound (1024). */
const REJECT_REASON_CHARS = 1_000;

export class MasterSession {
  phase: Phase = 'challenge';
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  private readonly box = nacl.box.keyPair();
  private conn: Uint8Array | null = null;
  /** the master run this connection serves (from its challenge) */
  private session: Uint8Array | null = null;
  private masterPaths = new Set<string>();
  private n = 0;
  private alive = true;
  private closing = false;
  private handshakeTimer: Timer | null = null;
  private heartbeat: Timer | null = null;

  constructor(
    readonly ws: FrameSocket,
    private readonly host: MasterSessionHost,
    private readonly opts: MasterSessionOptions,
  ) {
    this.clock = opts.clock ?? realClock;
    this.log = opts.log;
    ws.listen({
      frame: (data, isBinary) => this.onFrame(data, isBinary),
      close: (code, reason) => this.onClose(code, reason),
      ping: () => {
        this.alive = true;
      },
    });
  }

  get ready(): boolean {
    return this.phase === 'ready';
  }

  /** The paths the master's welcome named. */
  get announcedPaths(): string[] {
    return [...this.masterPaths];
  }

  /** The connection is open: say hello, and give the master a deadline. */
  start(): void {
    // A peer that accepts the connection and then says nothing would hold this agent forever.
    this.handshakeTimer = this.clock.setTimeout(() => {
      if (this.phase === 'ready' || this.phase === 'closed') return;
      this.log.warn('the master did not complete the handshake in time; reconnecting', { url: this.opts.url, phase: this.phase });
      this.ws.terminate();
    }, this.opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS);
    this.ws.send(encode({ t: 'hello', v: PROTOCOL_VERSION, name: this.opts.name, nonce: this.nonce, version: SOFTWARE_VERSION }));
  }

  /** Sends an authenticated message (dropped unless the connection is ready). */
  send(msg: Record<string, unknown>): void {
    if (this.phase !== 'ready' || this.closing || !this.ws.isOpen) return;
    this.ws.send(seal(this.opts.signer, 'agent->master', encode({ ...msg, conn: this.conn!, n: this.n++ })));
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.stopTimers();
    this.ws.close(code, reason.slice(0, CLOSE_REASON_CHARS));
  }

  terminate(): void {
    this.stopTimers();
    this.ws.terminate();
  }

  private fail(why: string, code: number): void {
    this.log.error(why);
    this.close(code, why);
  }

  private onFrame(bytes: Uint8Array, isBinary: boolean): void {
    if (this.closing || this.phase === 'closed') return;
    if (!isBinary) return this.reject('a text frame from the master');
    if (bytes.length > (this.opts.maxFrame ?? MAX_MASTER_FRAME)) return this.close(CLOSE.tooBig, 'frame too large');
    const body = open(this.opts.master, 'master->agent', bytes);
    if (body === null) {
      if (this.phase !== 'ready') return this.fail('the master did not prove it holds the key in master.key of the agent config: refusing it', CLOSE.protocol);
      return this.reject('a frame with a bad signature (forged or altered)');
    }
    let value: unknown;
    try {
      value = decode(body);
    } catch (err) {
      return this.reject(`an undecodable signed frame: ${(err as Error).message}`);
    }
    try {
      if (this.phase === 'challenge') this.onChallenge(value);
      else if (this.phase === 'welcome') this.onWelcome(value);
      else this.onBatch(value);
    } catch (err) {
      if (this.phase === 'ready') this.reject((err as Error).message);
      else this.fail(`handshake with the master failed: ${(err as Error).message}`, err instanceof ProtocolError ? err.close : CLOSE.protocol);
    }
  }

  private onChallenge(value: unknown): void {
    const ch = parseChallenge(value);
    if (ch.v !== PROTOCOL_VERSION) throw new ProtocolError(CLOSE.protocol, `master speaks protocol ${ch.v}, this agent ${PROTOCOL_VERSION}`);
    if (!sameBytes(ch.echo, this.nonce) || ch.name !== this.opts.name) throw new ProtocolError(CLOSE.protocol, 'challenge not made for this connection');
    this.conn = connectionId(this.nonce, ch.nonce);
    this.session = ch.session;
    const followed = this.host.position();
    const sameRun = followed.session !== null && sameBytes(followed.session, ch.session);
    const auth = {
      t: 'auth',
      conn: this.conn,
      n: this.n++,
      boxKey: this.box.publicKey,
      applied: sameRun ? { session: ch.session, seq: followed.seq } : null,
      version: SOFTWARE_VERSION,
    };
    this.phase = 'welcome';
    this.ws.send(seal(this.opts.signer, 'agent->master', encode(auth)));
  }

  private onWelcome(value: unknown): void {
    const w = parseWelcome(value);
    if (!sameBytes(w.conn, this.conn!) || w.node !== this.opts.name || !sameBytes(w.session, this.session!)) {
      throw new ProtocolError(CLOSE.protocol, 'welcome not made for this connection');
    }
    const creds = openCredentials(w.creds, w.boxKey, this.box);
    if (creds === null) throw new ProtocolError(CLOSE.protocol, 'could not decrypt the rsync credentials');
    this.masterPaths = new Set(w.paths.map((p) => p.name));
    this.host.onWelcome(this, w, creds);
    this.phase = 'ready';
    if (this.handshakeTimer) this.clock.clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
    this.scheduleHeartbeatCheck();
    this.host.onReady(this);
  }

  /** The master pings every heartbeat; two intervals without one and it is gone. */
  private scheduleHeartbeatCheck(): void {
    this.heartbeat = this.clock.setTimeout(() => {
      this.heartbeat = null;
      if (this.phase !== 'ready' || this.closing) return;
      if (!this.alive) {
        this.log.warn('master stopped sending heartbeats; reconnecting');
        this.ws.terminate();
        return;
      }
      this.alive = false;
      this.scheduleHeartbeatCheck();
    }, (this.opts.heartbeatMs ?? HEARTBEAT_MS) * 2);
    this.heartbeat.unref?.();
  }

  private onBatch(value: unknown): void {
    const b = parseBatch(value);
    const lastSeq = this.host.position().seq;
    if (!sameBytes(b.session, this.session!)) throw new Error(`batch ${b.seq} belongs to another run of the master (replayed)`);
    if (!b.to.includes(this.opts.name)) throw new Error(`batch ${b.seq} is addressed to ${b.to.slice(0, 3).join(', ')}, not this node`);
    if (b.seq <= lastSeq) throw new Error(`batch ${b.seq} was already received (replayed; last was ${lastSeq})`);
    const unknown = b.changes.find((ch) => !this.masterPaths.has(ch.name));
    if (unknown) throw new Error(`batch ${b.seq} names path ${unknown.name}, which the master did not announce`);
    this.send({ t: 'ack', seq: b.seq });
    this.host.onBatch(this, b);
  }

  private reject(reason: string): void {
    this.host.onRejected(this, reason);
    this.log.warn('rejected a frame from the master', { reason });
    if (this.phase === 'ready') this.send({ t: 'reject', seq: null, reason: reason.slice(0, REJECT_REASON_CHARS) });
  }

  private stopTimers(): void {
    if (this.handshakeTimer) this.clock.clearTimeout(this.handshakeTimer);
    if (this.heartbeat) this.clock.clearTimeout(this.heartbeat);
    this.handshakeTimer = null;
    this.heartbeat = null;
  }

  private onClose(code: number, reason: string): void {
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    this.stopTimers();
    this.host.onClosed(this, code, reason, wasReady);
  }
}
