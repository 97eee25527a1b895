// The agent: connects to its master, proves who it is, checks that the master
// is who the config says, and applies verified batches with rsync.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import nacl from 'tweetnacl';
import type { AgentConfig } from '../config/types.js';
import { loadSecretKey } from '../common/keyfile.js';
import { makeLogger, type Logger } from '../common/log.js';
import { decode, encode } from '../protocol/codec.js';
import { open, seal } from '../protocol/envelope.js';
import { CLOSE, connectionId, openCredentials, sameBytes, type RsyncCredentials } from '../protocol/handshake.js';
import { parsePublicKey } from '../protocol/keys.js';
import { HANDSHAKE_TIMEOUT_MS, HEARTBEAT_MS, MAX_MASTER_FRAME } from '../protocol/limits.js';
import { NONCE_BYTES, parseBatch, parseChallenge, parseWelcome, type Batch, type RunReport, type Welcome } from '../protocol/messages.js';
import { verifierFor, type Signer, type Verifier } from '../protocol/sign.js';
import { PROTOCOL_VERSION, SOFTWARE_VERSION } from '../protocol/version.js';
import { AppliedStore } from './applied-state.js';
import { TlsTunnel } from './tls-tunnel.js';
import { Applier, type ApplierPath } from './applier.js';
import { killAllRsync } from './rsync-run.js';

export interface AgentOptions {
  dryRun?: boolean;
  log?: Logger;
}

type Phase = 'challenge' | 'welcome' | 'ready';

interface Connection {
  ws: WebSocket;
  phase: Phase;
  nonce: Uint8Array;
  conn: Uint8Array | null;
  session: Uint8Array | null;
  box: nacl.BoxKeyPair;
  n: number;
  heartbeat: NodeJS.Timeout | null;
  alive: boolean;
  handshake: NodeJS.Timeout | null;
}

/** Node's codes for a certificate that does not verify (chain, self-signed, expiry, host name). */
const TLS_VERIFY_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS/;

const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;

export class Agent {
  private readonly signer: Signer;
  private readonly master: Verifier;
  private readonly log: Logger;
  private readonly store: AppliedStore;
  readonly applier: Applier;
  /** carries rsync to a master whose rsync port speaks TLS */
  private tunnel: TlsTunnel | null = null;
  private c: Connection | null = null;
  private creds: RsyncCredentials | null = null;
  /** master run whose batches we are following, and the highest seq seen in it */
  private session: Uint8Array | null = null;
  private lastSeq = 0;
  private masterPaths = new Set<string>();
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** rejected frames, for tests and logs */
  rejected = 0;
  /** becomes true once a welcome was accepted */
  connected = false;

  constructor(
    readonly config: AgentConfig,
    opts: AgentOptions = {},
  ) {
    this.log = opts.log ?? makeLogger({ component: 'agent', node: config.name });
    this.signer = loadSecretKey(config.key);
    this.master = verifierFor(parsePublicKey(config.master.key));
    this.store = new AppliedStore(config.state, config.name);
    const applied = this.store.load();
    if (applied) {
      this.session = applied.session;
      this.lastSeq = applied.seq;
    }
    this.applier = new Applier({
      rsync: config.rsync,
      dryRun: opts.dryRun ?? false,
      log: this.log,
      password: () => this.creds?.password ?? null,
      onApplied: (seq) => {
        if (this.session) this.store.save({ session: this.session, seq });
      },
      onResult: (seq, ok, runs) => this.sendResult(seq, ok, runs),
      onProgress: (path, percent) => {
        if (this.c) this.send(this.c, { t: 'progress', path, percent });
      },
    });
  }

  async start(): Promise<void> {
    const { url, ca } = this.config.master;
    // Only a wss:// master can have a TLS rsync port; the welcome says if it does.
    if (url.startsWith('wss:')) {
      this.tunnel = new TlsTunnel({
        ...(ca ? { ca: readFileSync(ca) } : {}),
        onError: (err, target) => {
          const where = { rsync: `${target.host}:${target.port}`, err };
          if (TLS_VERIFY_ERROR.test((err as NodeJS.ErrnoException).code ?? '')) {
            this.log.error("rsync over TLS: cannot verify the master's certificate: check master.ca and master.rsyncHost", where);
          } else this.log.warn('rsync over TLS: connection to the master failed', where);
        },
      });
      await this.tunnel.listen();
    }
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    const { url, ca } = this.config.master;
    const ws = new WebSocket(url, {
      maxPayload: MAX_MASTER_FRAME,
      perMessageDeflate: false,
      handshakeTimeout: 10_000,
      ...(ca ? { ca: readFileSync(ca) } : {}),
    });
    const c: Connection = {
      ws,
      phase: 'challenge',
      nonce: new Uint8Array(randomBytes(NONCE_BYTES)),
      conn: null,
      session: null,
      box: nacl.box.keyPair(),
      n: 0,
      heartbeat: null,
      alive: true,
      handshake: null,
    };
    this.c = c;
    ws.on('error', (err) => {
      // Otherwise only visible with -v, and the agent would just keep retrying in silence.
      if (TLS_VERIFY_ERROR.test((err as NodeJS.ErrnoException).code ?? '')) {
        this.log.error("cannot verify the master's TLS certificate: check master.ca and the host in master.url", { url, err });
      } else this.log.debug('connection error', { url, err });
    });
    ws.on('open', () => {
      this.log.debug('connected; authenticating', { url });
      // A peer that accepts the connection and then says nothing would hold this agent forever.
      c.handshake = setTimeout(() => {
        if (c.phase === 'ready') return;
        this.log.warn('the master did not complete the handshake in time; reconnecting', { url, phase: c.phase });
        c.ws.terminate();
      }, HANDSHAKE_TIMEOUT_MS);
      ws.send(encode({ t: 'hello', v: PROTOCOL_VERSION, name: this.config.name, nonce: c.nonce, version: SOFTWARE_VERSION }));
    });
    ws.on('message', (data, isBinary) => this.onFrame(c, data, isBinary));
    ws.on('ping', () => {
      c.alive = true;
    });
    ws.on('close', (code, reason) => this.onClose(c, code, reason.toString()));
  }

  private onClose(c: Connection, code: number, reason: string): void {
    if (c.heartbeat) clearInterval(c.heartbeat);
    if (c.handshake) clearTimeout(c.handshake);
    if (this.c !== c) return;
    this.c = null;
    const wasReady = c.phase === 'ready';
    this.connected = false;
    if (this.stopped) return;
    if (code === CLOSE.unauthorized) {
      this.log.error('the master refused this agent: check that its name and public key are in the master config', { reason });
    } else if (wasReady) {
      this.log.warn('lost the master; reconnecting', { code, reason });
    }
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt++) * (0.75 + Math.random() * 0.5);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private fail(c: Connection, why: string): void {
    this.log.error(why);
    c.ws.close(CLOSE.protocol, why.slice(0, 120));
  }

  private onFrame(c: Connection, data: WebSocket.RawData, isBinary: boolean): void {
    if (this.c !== c) return;
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (!isBinary) return this.reject(c, null, 'a text frame from the master');
    const body = open(this.master, 'master->agent', bytes);
    if (body === null) {
      if (c.phase !== 'ready') return this.fail(c, 'the master did not prove it holds the key in master.key of the agent config: refusing it');
      return this.reject(c, null, 'a frame with a bad signature (forged or altered)');
    }
    let value: unknown;
    try {
      value = decode(body);
    } catch (err) {
      return this.reject(c, null, `an undecodable signed frame: ${(err as Error).message}`);
    }
    try {
      if (c.phase === 'challenge') this.onChallenge(c, value);
      else if (c.phase === 'welcome') this.onWelcome(c, value);
      else this.onBatch(c, value);
    } catch (err) {
      if (c.phase === 'ready') this.reject(c, null, (err as Error).message);
      else this.fail(c, `handshake with the master failed: ${(err as Error).message}`);
    }
  }

  private onChallenge(c: Connection, value: unknown): void {
    const ch = parseChallenge(value);
    if (ch.v !== PROTOCOL_VERSION) throw new Error(`master speaks protocol ${ch.v}, this agent ${PROTOCOL_VERSION}`);
    if (!sameBytes(ch.echo, c.nonce) || ch.name !== this.config.name) throw new Error('challenge not made for this connection');
    c.conn = connectionId(c.nonce, ch.nonce);
    c.session = ch.session;
    const sameRun = this.session !== null && sameBytes(this.session, ch.session);
    const auth = {
      t: 'auth',
      conn: c.conn,
      n: c.n++,
      boxKey: c.box.publicKey,
      applied: sameRun ? { session: ch.session, seq: this.lastSeq } : null,
      version: SOFTWARE_VERSION,
    };
    c.phase = 'welcome';
    c.ws.send(seal(this.signer, 'agent->master', encode(auth)));
  }

  private onWelcome(c: Connection, value: unknown): void {
    const w: Welcome = parseWelcome(value);
    if (!sameBytes(w.conn, c.conn!) || w.node !== this.config.name || !sameBytes(w.session, c.session!)) {
      throw new Error('welcome not made for this connection');
    }
    const creds = openCredentials(w.creds, w.boxKey, c.box);
    if (creds === null) throw new Error('could not decrypt the rsync credentials');
    this.creds = creds;
    if (this.session === null || !sameBytes(this.session, w.session)) {
      // A new run of the master: its sequence numbers start again, and it sends a full sync.
      this.session = w.session;
      this.lastSeq = 0;
      this.applier.reset();
    }
    this.masterPaths = new Set(w.paths.map((p) => p.name));
    this.applier.setPaths(this.applierPaths(w, creds));
    for (const p of this.config.paths) {
      if (!this.masterPaths.has(p.name)) this.log.warn('the master has no path of this name; nothing will be synced into it', { path: p.name, target: p.target });
    }
    c.phase = 'ready';
    if (c.handshake) clearTimeout(c.handshake);
    this.connected = true;
    this.attempt = 0;
    c.heartbeat = setInterval(() => {
      if (!c.alive) {
        this.log.warn('master stopped sending heartbeats; reconnecting');
        c.ws.terminate();
        return;
      }
      c.alive = false;
    }, HEARTBEAT_MS * 2);
    c.heartbeat.unref();
    this.log.info('connected to master', { url: this.config.master.url, paths: [...this.masterPaths] });
    this.applier.retryNow();
  }

  private applierPaths(w: Welcome, creds: RsyncCredentials): ApplierPath[] {
    const host = this.config.master.rsyncHost ?? new URL(this.config.master.url).hostname;
    let via = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${w.rsyncPort}`;
    if (w.rsyncTls) {
      if (!this.tunnel) throw new Error('the master serves rsync over TLS, but this agent reached it without TLS; use a wss:// url');
      this.tunnel.target = { host, port: w.rsyncPort };
      via = `127.0.0.1:${this.tunnel.port}`;
    }
    const out: ApplierPath[] = [];
    for (const p of this.config.paths) {
      const remote = w.paths.find((m) => m.name === p.name);
      if (!remote) continue;
      out.push({
        name: p.name,
        target: p.target,
        maxDelete: p.maxDelete,
        excludes: remote.exclude,
        url: `rsync://${creds.user}@${via}/${p.name}/`,
        optIns: { devices: p.devices, specials: p.specials, setuid: p.setuid },
      });
    }
    return out;
  }

  private onBatch(c: Connection, value: unknown): void {
    const b: Batch = parseBatch(value);
    if (!sameBytes(b.session, c.session!)) throw new Error(`batch ${b.seq} belongs to another run of the master (replayed)`);
    if (!b.to.includes(this.config.name)) throw new Error(`batch ${b.seq} is addressed to ${b.to.slice(0, 3).join(', ')}, not this node`);
    if (b.seq <= this.lastSeq) throw new Error(`batch ${b.seq} was already received (replayed; last was ${this.lastSeq})`);
    const unknown = b.changes.find((ch) => !this.masterPaths.has(ch.name));
    if (unknown) throw new Error(`batch ${b.seq} names path ${unknown.name}, which the master did not announce`);
    this.lastSeq = b.seq;
    this.send(c, { t: 'ack', seq: b.seq });
    this.applier.enqueue(b.seq, b.changes);
  }

  private reject(c: Connection, seq: number | null, reason: string): void {
    this.rejected++;
    this.log.warn('rejected a frame from the master', { reason });
    if (c.phase === 'ready') this.send(c, { t: 'reject', seq, reason: reason.slice(0, 1000) });
  }

  private send(c: Connection, msg: Record<string, unknown>): void {
    if (c.phase !== 'ready' || c.ws.readyState !== WebSocket.OPEN) return;
    c.ws.send(seal(this.signer, 'agent->master', encode({ ...msg, conn: c.conn!, n: c.n++ })));
  }

  private sendResult(seq: number, ok: boolean, runs: RunReport[]): void {
    const c = this.c;
    if (c) this.send(c, { t: 'result', seq, ok, runs });
  }

  hup(): void {
    // Waiting out a backoff (say, refused until the master's config lists
    // this node): try now.
    if (this.reconnectTimer && !this.stopped) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.attempt = 0;
      this.connect();
    }
    this.applier.retryNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const c = this.c;
    this.c = null;
    if (c) {
      if (c.heartbeat) clearInterval(c.heartbeat);
      if (c.handshake) clearTimeout(c.handshake);
      c.ws.close(CLOSE.shutdown, 'agent shutting down');
    }
    killAllRsync();
    await this.applier.stop();
    await this.tunnel?.close();
    c?.ws.terminate();
  }
}
