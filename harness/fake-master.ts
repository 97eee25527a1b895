// A stand-in for the master, for attacking a real agent process: it does the
// master's side of the handshake with whatever key it is given (the cluster's
// real master key, or another), optionally runs a real rsync daemon with
// per-node credentials, and then lets the test send any frame it likes. What
// the agent sends back is verified with the agent's key and decoded, so tests
// can see its acks, results and rejects.
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import nacl from 'tweetnacl';
import { decode, encode } from '../src/protocol/codec.js';
import { open, seal } from '../src/protocol/envelope.js';
import { connectionId, sameBytes, sealCredentials, type RsyncCredentials } from '../src/protocol/handshake.js';
import { HEARTBEAT_MS } from '../src/protocol/limits.js';
import { NONCE_BYTES, parseAgentMessage, parseAuth, parseHello, type AgentMessage, type Auth, type Hello } from '../src/protocol/messages.js';
import { verifierFor, type Signer, type Verifier } from '../src/protocol/sign.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';
import type { PathChanges } from '../src/protocol/changes.js';
import { makeCredentials } from '../src/master/rsyncd/credentials.js';
import { RsyncDaemon } from '../src/master/rsyncd/daemon.js';
import { waitFor } from './wait.js';

export interface FakeMasterOptions {
  host?: string;
  port: number;
  /** the key the agent will see the master sign with */
  signer: Signer;
  /** node name -> public key, to verify what agents send; unknown nodes are accepted unverified */
  agents?: Map<string, Uint8Array>;
  /** paths announced in the welcome */
  paths: { name: string; exclude?: string[] }[];
  /** a real rsync daemon serving these directories, with credentials for `nodes` */
  rsync?: { port: number; modules: { name: string; path: string; exclude?: string[] }[]; nodes: string[] };
  /** accept connections but never answer the hello */
  silent?: boolean;
}

export class FakeMaster {
  /** the run id sent in challenges and welcomes; change it to pose as a restarted master */
  session = new Uint8Array(randomBytes(16));
  readonly peers: FakePeer[] = [];
  /** hellos received, authenticated or not */
  readonly hellos: Hello[] = [];
  private server: Server | null = null;
  private wss: WebSocketServer | null = null;
  private rsyncd: RsyncDaemon | null = null;
  private creds = new Map<string, RsyncCredentials>();
  private readonly sockets = new Set<WebSocket>();

  constructor(readonly opts: FakeMasterOptions) {}

  async start(): Promise<this> {
    if (this.opts.rsync) {
      this.creds = makeCredentials(this.opts.rsync.nodes);
      this.rsyncd = new RsyncDaemon({
        binary: 'rsync',
        host: this.opts.host ?? '127.0.0.1',
        port: this.opts.rsync.port,
        modules: this.opts.rsync.modules.map((m) => ({ name: m.name, path: m.path, excludes: m.exclude ?? [] })),
        credentials: this.creds,
      });
      await this.rsyncd.start();
    }
    const server = createHttpServer();
    const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1024 * 1024 });
    wss.on('connection', (ws) => this.onConnection(ws));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.wss = wss;
    return this;
  }

  newRun(): void {
    this.session = new Uint8Array(randomBytes(16));
  }

  /** The next peer to complete the handshake (or one that already did and was not taken yet). */
  async nextPeer(timeoutMs = 20_000): Promise<FakePeer> {
    const taken = this.taken;
    await waitFor(() => this.peers.length > taken, timeoutMs, 'an agent to complete the handshake with the fake master');
    this.taken = taken + 1;
    return this.peers[taken]!;
  }

  private taken = 0;

  /** The most recent authenticated connection. */
  async latestPeer(timeoutMs = 20_000): Promise<FakePeer> {
    await waitFor(() => this.peers.length > 0, timeoutMs, 'an agent to complete the handshake with the fake master');
    return this.peers.at(-1)!;
  }

  private onConnection(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.on('error', () => undefined);
    const masterNonce = new Uint8Array(randomBytes(NONCE_BYTES));
    let hello: Hello | null = null;
    let conn: Uint8Array | null = null;
    const session = this.session;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        onMessage(data, isBinary);
      } catch (err) {
        ws.close(4400, (err as Error).message.slice(0, 100));
      }
    });
    const onMessage = (data: Buffer, isBinary: boolean): void => {
      if (!isBinary) return;
      if (hello === null) {
        hello = parseHello(decode(data));
        this.hellos.push(hello);
        if (this.opts.silent) return;
        conn = connectionId(hello.nonce, masterNonce);
        const challenge = { t: 'challenge', v: PROTOCOL_VERSION, session, nonce: masterNonce, echo: hello.nonce, name: hello.name };
        ws.send(seal(this.opts.signer, 'master->agent', encode(challenge)));
        return;
      }
      if (this.opts.silent || this.peers.some((p) => p.ws === ws)) return;
      const key = this.opts.agents?.get(hello.name);
      const body = key ? open(verifierFor(key), 'agent->master', data) : data.subarray(64);
      if (body === null) return ws.close(4401, 'bad agent signature');
      const auth = parseAuth(decode(body));
      if (!sameBytes(auth.conn, conn!)) return ws.close(4401, 'auth for another connection');
      const box = nacl.box.keyPair();
      const creds = this.creds.get(hello.name) ?? { user: `inosync-${hello.name}-none`, password: 'none' };
      const welcome = {
        t: 'welcome',
        conn: conn!,
        n: 0,
        node: hello.name,
        session,
        boxKey: box.publicKey,
        creds: sealCredentials(creds, auth.boxKey, box),
        rsyncPort: this.opts.rsync?.port ?? 1,
        rsyncTls: false,
        paths: this.opts.paths.map((p) => ({ name: p.name, exclude: p.exclude ?? [] })),
      };
      const peer = new FakePeer(ws, hello.name, conn!, session, auth, this.opts.signer, key ?? null);
      this.peers.push(peer);
      // Like the real master's heartbeat: without it the agent gives up on us after 2 * HEARTBEAT_MS.
      const heartbeat = setInterval(() => ws.ping(), HEARTBEAT_MS);
      ws.on('close', () => clearInterval(heartbeat));
      ws.send(seal(this.opts.signer, 'master->agent', encode(welcome)));
    };
  }

  async stop(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss?.close();
    const closed = new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
    await closed;
    await this.rsyncd?.stop();
  }
}

export interface Reply {
  /** null when the frame did not verify or decode (which would itself be a finding) */
  msg: AgentMessage | null;
  raw: Buffer;
  problem?: string;
}

/** One authenticated agent connection, seen from the master's side. */
export class FakePeer {
  readonly replies: Reply[] = [];
  private lastN: number;
  closed: { code: number; reason: string } | null = null;

  constructor(
    readonly ws: WebSocket,
    readonly name: string,
    readonly conn: Uint8Array,
    readonly session: Uint8Array,
    readonly auth: Auth,
    private readonly signer: Signer,
    private readonly agentKey: Uint8Array | null,
  ) {
    this.lastN = auth.n;
    this.verifier = agentKey ? verifierFor(agentKey) : null;
    ws.on('message', (data: Buffer) => this.onReply(data));
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
    });
  }

  private waiters: Array<() => void> = [];
  private readonly verifier: Verifier | null;

  private onReply(raw: Buffer): void {
    try {
      const body = this.verifier ? open(this.verifier, 'agent->master', raw) : raw.subarray(64);
      if (body === null) throw new Error('reply signature does not verify with the agent key');
      const msg = parseAgentMessage(decode(body));
      if (!sameBytes(msg.conn, this.conn)) throw new Error('reply bound to another connection');
      if (msg.n <= this.lastN) throw new Error(`reply counter did not increase (${msg.n} after ${this.lastN})`);
      this.lastN = msg.n;
      this.replies.push({ msg, raw });
    } catch (err) {
      this.replies.push({ msg: null, raw, problem: (err as Error).message });
    }
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves as soon as `done()` holds, checked at every reply; rejects after `timeoutMs`. */
  until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.replies.length} replies)`)), timeoutMs);
      const check = (): void => {
        if (done()) {
          clearTimeout(timer);
          resolve();
        } else this.waiters.push(check);
      };
      check();
    });
  }

  get rejects(): Extract<AgentMessage, { t: 'reject' }>[] {
    return this.replies.flatMap((r) => (r.msg?.t === 'reject' ? [r.msg] : []));
  }

  /** A batch body as the real master would encode it; `over` replaces any field. */
  batchBody(seq: number, changes: PathChanges[], over: Record<string, unknown> = {}): Uint8Array {
    return encode({ t: 'batch', session: this.session, seq, to: [this.name], time: Date.now(), changes, ...over });
  }

  seal(body: Uint8Array, signer: Signer = this.signer): Uint8Array {
    return seal(signer, 'master->agent', body);
  }

  send(frame: Uint8Array | string): void {
    this.ws.send(frame, { binary: typeof frame !== 'string' });
  }

  /** Until `n` more replies than `from` arrived, or one matches `pred`. */
  async waitReply(pred: (r: Reply) => boolean, timeoutMs = 15_000, from = 0): Promise<Reply> {
    let found: Reply | undefined;
    await waitFor(
      () => (found = this.replies.slice(from).find(pred)) !== undefined,
      timeoutMs,
      'a reply from the agent',
      () => JSON.stringify(this.replies.slice(from).map((r) => r.msg ?? r.problem)),
    );
    return found!;
  }

  close(code = 4503, reason = 'fake master closing'): void {
    this.ws.close(code, reason);
  }
}

export function changes(name: string, files: string[] = [], extra: Partial<PathChanges> = {}): PathChanges {
  return { name, full: false, files, dirs: [], trees: [], ...extra };
}
