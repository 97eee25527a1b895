// A stand-in for an agent, for attacking a real master process: a websocket
// client that does the agent's side of the handshake with whatever name and
// key it is given, and otherwise sends exactly what the test tells it to.
// Everything the master sends is kept, so a test can show what an intruder
// learned (nothing, ideally).
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import nacl from 'tweetnacl';
import { decode, encode } from '../src/protocol/codec.js';
import { open, seal } from '../src/protocol/envelope.js';
import { connectionId, openCredentials, type RsyncCredentials } from '../src/protocol/handshake.js';
import { NONCE_BYTES, parseChallenge, parseWelcome, type Challenge, type Welcome } from '../src/protocol/messages.js';
import { verifierFor, type Signer, type Verifier } from '../src/protocol/sign.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';

export interface FakeAgentOptions {
  url: string;
  name: string;
  /** the key the agent signs with (the node's real key, or an intruder's) */
  signer: Signer;
  /** the master's public key: when given, master frames are verified */
  masterKey?: Uint8Array;
  /** bind the client side to this address (127.0.0.x) */
  localAddress?: string;
  ca?: Buffer;
  /** reuse a box key pair (tweetnacl makes one in milliseconds; fuzzing makes thousands of connections) */
  box?: nacl.BoxKeyPair;
  /** skip opening the boxed credentials */
  skipCreds?: boolean;
}

export class FakeAgent {
  readonly frames: Buffer[] = [];
  readonly nonce = new Uint8Array(randomBytes(NONCE_BYTES));
  readonly box: nacl.BoxKeyPair;
  challenge: Challenge | null = null;
  welcome: Welcome | null = null;
  creds: RsyncCredentials | null = null;
  conn: Uint8Array | null = null;
  /** the next counter value for signed messages */
  n = 0;
  closed: { code: number; reason: string } | null = null;
  readonly ws: WebSocket;
  readonly opened: Promise<void>;

  constructor(readonly opts: FakeAgentOptions) {
    this.box = opts.box ?? nacl.box.keyPair();
    this.ws = new WebSocket(opts.url, {
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    this.ws.on('message', (data: Buffer) => {
      this.frames.push(data);
      this.wake();
    });
    this.ws.on('error', () => undefined);
    this.ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('close', (code) => reject(new Error(`closed before opening (${code})`)));
      this.ws.once('error', reject);
    });
    this.opened.catch(() => undefined);
  }

  static async connect(opts: FakeAgentOptions): Promise<FakeAgent> {
    const a = new FakeAgent(opts);
    await a.opened;
    return a;
  }

  send(data: Uint8Array | string, binary = typeof data !== 'string'): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data, { binary });
  }

  hello(over: Record<string, unknown> = {}): void {
    this.send(encode({ t: 'hello', v: PROTOCOL_VERSION, name: this.opts.name, nonce: this.nonce, version: 'fake', ...over }));
  }

  private waiters: Array<() => void> = [];

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when `done()` holds, checked at every frame and at close; rejects after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      const check = (): void => {
        if (done()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      check();
    });
  }

  async nextFrame(index: number, timeoutMs = 10_000): Promise<Buffer | null> {
    await this.until(() => this.frames.length > index || this.closed !== null, timeoutMs, `frame ${index} from the master`);
    return this.frames[index] ?? null;
  }

  async waitClosed(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    await this.until(() => this.closed !== null, timeoutMs, 'the master to close the connection');
    return this.closed!;
  }

  private body(frame: Buffer): unknown {
    if (!this.opts.masterKey) return decode(frame.subarray(64));
    const body = open(cachedVerifier(this.opts.masterKey), 'master->agent', frame);
    if (body === null) throw new Error('a master frame that does not verify with the master key');
    return decode(body);
  }

  /** hello, challenge, auth; resolves once the challenge has been answered. */
  async answerChallenge(over: Record<string, unknown> = {}): Promise<Challenge> {
    this.hello();
    const frame = await this.nextFrame(0);
    if (frame === null) throw new Error(`the master closed the connection instead of a challenge: ${JSON.stringify(this.closed)}`);
    const ch = parseChallenge(this.body(frame));
    this.challenge = ch;
    this.conn = connectionId(this.nonce, ch.nonce);
    this.sendSigned({ t: 'auth', boxKey: this.box.publicKey, applied: null, version: 'fake', ...over });
    return ch;
  }

  /** The whole handshake, opening the boxed rsync credentials. */
  async handshake(over: Record<string, unknown> = {}): Promise<Welcome> {
    await this.answerChallenge(over);
    const frame = await this.nextFrame(1);
    if (frame === null) throw new Error(`the master closed the connection instead of a welcome: ${JSON.stringify(this.closed)}`);
    const w = parseWelcome(this.body(frame));
    this.welcome = w;
    if (!this.opts.skipCreds) this.creds = openCredentials(w.creds, w.boxKey, this.box);
    return w;
  }

  /** Adds conn and the next counter unless `msg` sets them, signs with `signer` (default: ours). */
  sendSigned(msg: Record<string, unknown>, signer: Signer = this.opts.signer): Uint8Array {
    const frame = seal(signer, 'agent->master', encode({ conn: this.conn, n: this.n++, ...msg }));
    this.send(frame);
    return frame;
  }

  /** Frames after the handshake, decoded (batches, for instance). */
  decodedAfter(index: number): unknown[] {
    return this.frames.slice(index).map((f) => this.body(f));
  }

  close(): void {
    this.ws.terminate();
  }
}

// Making a verifier costs about a millisecond (a key import); fuzzing opens thousands of connections.
const verifiers = new Map<string, Verifier>();
function cachedVerifier(key: Uint8Array): Verifier {
  const id = Buffer.from(key).toString('base64');
  let v = verifiers.get(id);
  if (!v) verifiers.set(id, (v = verifierFor(key)));
  return v;
}
