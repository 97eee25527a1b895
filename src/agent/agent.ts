// The agent: connects to its master, proves who it is, checks that the master
// is who the config says (MasterSession), and applies verified batches with rsync.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import type { AgentConfig } from '../config/types.js';
import { realClock, type Clock, type Timer } from '../common/clock.js';
import { loadSecretKey } from '../common/keyfile.js';
import { makeLogger, type Logger } from '../common/log.js';
import { CLOSE, sameBytes, type RsyncCredentials } from '../protocol/handshake.js';
import { parsePublicKey } from '../protocol/keys.js';
import { MAX_MASTER_FRAME } from '../protocol/limits.js';
import type { Batch, RunReport, Welcome } from '../protocol/messages.js';
import { verifierFor, type Signer, type Verifier } from '../protocol/sign.js';
import { WsFrameSocket } from '../common/ws-frame-socket.js';
import { AppliedStore } from './applied-state.js';
import { TlsTunnel } from './tls-tunnel.js';
import { Applier, type ApplierPath } from './applier.js';
import { MasterSession, type MasterSessionHost } from './master-session.js';
import { credentialsProblem, welcomeProblem } from './welcome-check.js';
import { ProtocolError } from '../protocol/errors.js';

export interface AgentOptions {
  dryRun?: boolean;
  log?: Logger;
  clock?: Clock;
  /** first wait before reconnecting; it doubles per failed attempt in a row */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** the master's heartbeat interval (both sides must agree) */
  heartbeatMs?: number;
  handshakeTimeoutMs?: number;
  /** the applier's waits after a failed rsync run */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Node's codes for a certificate that does not verify (chain, self-signed, expiry, host name). */
const TLS_VERIFY_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS/;

export const BACKOFF_MIN_MS = 250;
export const BACKOFF_MAX_MS = 30_000;
/** How long the websocket's own opening handshake (TCP, TLS, HTTP upgrade) may take. */
const CONNECT_TIMEOUT_MS = 10_000;

export class Agent implements MasterSessionHost {
  private readonly signer: Signer;
  private readonly master: Verifier;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly store: AppliedStore;
  readonly applier: Applier;
  /** carries rsync to a master whose rsync port speaks TLS */
  private tunnel: TlsTunnel | null = null;
  private c: MasterSession | null = null;
  private creds: RsyncCredentials | null = null;
  /** master run whose batches we are following, and the highest seq seen in it */
  private session: Uint8Array | null = null;
  private lastSeq = 0;
  private attempt = 0;
  private reconnectTimer: Timer | null = null;
  private stopped = false;
  /** rejected frames, for tests and logs */
  rejected = 0;
  /** becomes true once a welcome was accepted */
  connected = false;

  constructor(
    readonly config: AgentConfig,
    private readonly opts: AgentOptions = {},
  ) {
    this.log = opts.log ?? makeLogger({ component: 'agent', node: config.name });
    this.clock = opts.clock ?? realClock;
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
      clock: this.clock,
      ...(opts.retryMinMs !== undefined ? { retryMinMs: opts.retryMinMs } : {}),
      ...(opts.retryMaxMs !== undefined ? { retryMaxMs: opts.retryMaxMs } : {}),
      password: () => this.creds?.password ?? null,
      onApplied: (seq) => {
        if (!this.session) return;
        try {
          this.store.save({ session: this.session, seq });
        } catch (err) {
          // The mirror is applied; only the memory of it is lost, which costs a full sync after a restart.
          this.log.error('cannot save the applied position; a restart will bring a full sync', { state: this.config.state, err });
        }
      },
      onResult: (seq, ok, runs) => this.sendResult(seq, ok, runs),
      onProgress: (path, percent) => this.c?.send({ t: 'progress', path, percent }),
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
      handshakeTimeout: CONNECT_TIMEOUT_MS,
      ...(ca ? { ca: readFileSync(ca) } : {}),
    });
    ws.on('error', (err) => {
      // Otherwise only visible with -v, and the agent would just keep retrying in silence.
      if (TLS_VERIFY_ERROR.test((err as NodeJS.ErrnoException).code ?? '')) {
        this.log.error("cannot verify the master's TLS certificate: check master.ca and the host in master.url", { url, err });
      } else this.log.debug('connection error', { url, err });
    });
    const c = new MasterSession(new WsFrameSocket(ws), this, {
      name: this.config.name,
      signer: this.signer,
      master: this.master,
      log: this.log,
      url,
      clock: this.clock,
      ...(this.opts.heartbeatMs !== undefined ? { heartbeatMs: this.opts.heartbeatMs } : {}),
      ...(this.opts.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: this.opts.handshakeTimeoutMs } : {}),
    });
    this.c = c;
    ws.on('open', () => {
      this.log.debug('connected; authenticating', { url });
      c.start();
    });
  }

  // --- MasterSessionHost -------------------------------------------------

  position(): { session: Uint8Array | null; seq: number } {
    return { session: this.session, seq: this.lastSeq };
  }

  onWelcome(_c: MasterSession, w: Welcome, creds: RsyncCredentials): void {
    // Thrown before anything changes: the session fails the handshake and we try again later.
    const problem = welcomeProblem(w, { overTls: this.tunnel !== null, allowPlainRsync: this.config.master.allowPlainRsync === true }) ?? credentialsProblem(creds);
    if (problem !== null) throw new ProtocolError(CLOSE.protocol, problem);
    this.creds = creds;
    if (this.session === null || !sameBytes(this.session, w.session)) {
      // A new run of the master: its sequence numbers start again, and it sends a full sync.
      this.session = w.session;
      this.lastSeq = 0;
      this.applier.reset();
    }
    this.applier.setPaths(this.applierPaths(w, creds));
    const masterPaths = new Set(w.paths.map((p) => p.name));
    for (const p of this.config.paths) {
      if (!masterPaths.has(p.name)) this.log.warn('the master has no path of this name; nothing will be synced into it', { path: p.name, target: p.target });
    }
  }

  onReady(c: MasterSession): void {
    this.connected = true;
    this.attempt = 0;
    this.log.info('connected to master', { url: this.config.master.url, paths: c.announcedPaths });
    this.applier.retryNow();
  }

  onBatch(_c: MasterSession, b: Batch): void {
    this.lastSeq = b.seq;
    this.applier.enqueue(b.seq, b.changes);
  }

  onRejected(): void {
    this.rejected++;
  }

  onClosed(c: MasterSession, code: number, reason: string, wasReady: boolean): void {
    if (this.c !== c) return;
    this.c = null;
    this.connected = false;
    if (this.stopped) return;
    if (code === CLOSE.unauthorized) {
      this.log.error('the master refused this agent: check that its name and public key are in the master config', { reason });
    } else if (wasReady) {
      this.log.warn('lost the master; reconnecting', { code, reason });
    }
    const min = this.opts.backoffMinMs ?? BACKOFF_MIN_MS;
    const max = this.opts.backoffMaxMs ?? BACKOFF_MAX_MS;
    const delay = Math.min(max, min * 2 ** this.attempt++) * (0.75 + Math.random() * 0.5);
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
  }

  private applierPaths(w: Welcome, creds: RsyncCredentials): ApplierPath[] {
    const host = this.config.master.rsyncHost ?? new URL(this.config.master.url).hostname;
    let via = `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${w.rsyncPort}`;
    if (w.rsyncTls && this.tunnel) {
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

  private sendResult(seq: number, ok: boolean, runs: RunReport[]): void {
    this.c?.send({ t: 'result', seq, ok, runs });
  }

  hup(): void {
    // Waiting out a backoff (say, refused until the master's config lists
    // this node): try now.
    if (this.reconnectTimer && !this.stopped) {
      this.clock.clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.attempt = 0;
      this.connect();
    }
    this.applier.retryNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reconnectTimer) this.clock.clearTimeout(this.reconnectTimer);
    const c = this.c;
    this.c = null;
    c?.close(CLOSE.shutdown, 'agent shutting down');
    this.applier.killRsync();
    await this.applier.stop();
    await this.tunnel?.close();
    c?.terminate();
  }
}
