// The master: wires together the watched paths, the listener agents connect
// to, the dispatcher that decides what each node is sent, the rsync daemon
// agents pull from, and the status endpoint.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { WebSocket } from 'ws';
import type { MasterConfig } from '../config/types.js';
import { loadSecretKey } from '../common/keyfile.js';
import { logs, makeLogger, type Logger } from '../common/log.js';
import { realClock, type Clock } from '../common/clock.js';
import { CLOSE, type RsyncCredentials } from '../protocol/handshake.js';
import type { AgentMessage, Auth, Welcome } from '../protocol/messages.js';
import { parsePublicKey } from '../protocol/keys.js';
import { verifierFor, type Signer, type Verifier } from '../protocol/sign.js';
import type { MasterStatus } from '../protocol/status.js';
import { loadMasterConfig } from '../config/load.js';
import { formatProblem } from '../config/errors.js';
import { NodeTracker } from './node-tracker.js';
import { AgentSession, type AgentSessionOptions, type SessionHost } from './session.js';
import { makeCredentials } from './rsyncd/credentials.js';
import { nodesChange, restartOnlyChanges } from './reload.js';
import { startStatusServer } from './status-server.js';
import { Sender } from './sender.js';
import { AgentListener } from './listener.js';
import { startRsyncService, type RsyncService } from './rsyncd/service.js';
import { WatchedPath, type PathHost } from './watched-path.js';
import { ROOT_CHECK_MS } from './root-health.js';
import { every, type Repeating } from './every.js';
import { assembleStatus } from './master-status.js';

export { WINDOW, MAX_BUFFERED } from './dispatcher.js';

export interface MasterOptions {
  log?: Logger;
  /** Override: where the secret key comes from (tests) */
  signer?: Signer;
  /** -p: no rsync daemon; log what each batch would ask agents to sync */
  dryRun?: boolean;
  /** every timer and every `now` of the master's timing; default the real one */
  clock?: Clock;
  /** how often each watched root is looked at; default ROOT_CHECK_MS */
  rootCheckMs?: number;
  /** periodic reconciliation; default the config's `reconcile` seconds, 0 for none */
  reconcileMs?: number;
  /** each agent connection's heartbeat and handshake deadline; the clock defaults to the master's */
  sessions?: Omit<AgentSessionOptions, 'clock'>;
}

export class Master implements SessionHost {
  readonly signer: Signer;
  readonly session = new Uint8Array(randomBytes(16));
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly verifiers = new Map<string, Verifier>();
  readonly nodes = new Map<string, NodeTracker>();
  private readonly sessions = new Map<string, AgentSession>();
  private readonly paths = new Map<string, WatchedPath>();
  private readonly credentials: Map<string, RsyncCredentials>;
  private readonly listener: AgentListener<AgentSession>;
  /** null until start(), and in a dry run */
  private rsync: RsyncService | null = null;
  private readonly sender: Sender;
  private readonly startedAt: number;
  private reconcileTimer: Repeating | null = null;
  private readonly refusals: MasterStatus['refusals'] = [];
  private refusalsTotal = 0;
  #stopped = false;
  private readonly dryRun: boolean;
  private readonly rootCheckMs: number;
  private readonly reconcileMs: number;
  private statusServer: { port: number; close(): Promise<void> } | null = null;

  constructor(
    /** replaced, `nodes` only, by reload() */
    public config: MasterConfig,
    opts: MasterOptions = {},
  ) {
    this.log = opts.log ?? makeLogger({ component: 'master' });
    this.clock = opts.clock ?? realClock;
    this.startedAt = this.clock.now();
    this.signer = opts.signer ?? loadSecretKey(config.key);
    this.dryRun = opts.dryRun ?? false;
    this.rootCheckMs = opts.rootCheckMs ?? ROOT_CHECK_MS;
    this.reconcileMs = opts.reconcileMs ?? config.reconcile * 1000;
    for (const n of config.nodes) this.admit(n);
    // The parts see what they need of the master through these views, not the master itself.
    const stopped = (): boolean => this.#stopped;
    const { log, clock, signer, session, dryRun, nodes, sessions, paths } = this;
    this.sender = new Sender({ log, clock, signer, session, dryRun, stopped, nodes, sessions, paths, delayMs: () => this.config.delay * 1000 });
    const pathHost: PathHost = {
      log,
      clock,
      stopped,
      config: () => this.config,
      changed: (now) => this.sender.changed(now),
      resumed: (path) => {
        for (const n of this.nodes.values()) n.markFull(path);
        this.sender.pump();
      },
    };
    for (const p of config.paths) this.paths.set(p.name, new WatchedPath(p, pathHost));
    // Fresh per start: credentials from an earlier run stop working.
    this.credentials = makeCredentials(config.nodes.map((n) => n.name));
    this.listener = new AgentListener<AgentSession>({
      host: config.listen.host,
      port: config.listen.port,
      tls: config.tls,
      log: this.log,
      open: () => !this.#stopped,
      accept: (ws: WebSocket, address) => new AgentSession(ws, address, this, this.log, { clock: this.clock, ...opts.sessions }),
    });
  }

  /** Lets a node in: the key its handshake is checked against, and a fresh tracker. */
  private admit(n: MasterConfig['nodes'][number]): void {
    const pub = parsePublicKey(n.key);
    this.verifiers.set(n.name, verifierFor(pub));
    this.nodes.set(n.name, new NodeTracker(n.name, pub, this.config.paths.map((p) => p.name), this.config.maxPending, { clock: this.clock }));
  }

  async start(): Promise<void> {
    for (const wp of this.paths.values()) wp.checkAtStart();
    if (this.dryRun) this.log.warn('dry run: not starting the rsync daemon; batches are only logged');
    else this.rsync = await startRsyncService(this.config, this.credentials, this.log);
    for (const wp of this.paths.values()) await wp.start(this.rootCheckMs);
    await this.listener.start();
    this.statusServer = await startStatusServer({
      host: this.config.status.listen.host,
      port: this.config.status.listen.port,
      status: () => this.status(),
      log: this.log,
    });
    if (this.reconcileMs > 0) this.reconcileTimer = every(this.clock, this.reconcileMs, () => this.reconcile('periodic reconciliation'));
    this.log.info('master ready', {
      listen: `${this.config.listen.host}:${this.port}`,
      rsync: `${this.config.rsync.listen.host}:${this.config.rsync.listen.port}`,
      nodes: this.config.nodes.length,
      paths: this.config.paths.length,
    });
  }

  get statusPort(): number | null {
    return this.statusServer?.port ?? null;
  }

  get port(): number {
    return this.listener.port ?? this.config.listen.port;
  }

  // --- SessionHost -------------------------------------------------------

  verifierFor(node: string): Verifier | undefined {
    return this.verifiers.get(node);
  }

  onHello(s: AgentSession): void {
    // A hello proves nothing: the node's account moves only once it authenticates.
    this.log.debug('hello', { node: s.node, address: s.address });
  }

  onRefused(node: string | null, address: string | null, reason: string): void {
    const at = new Date(this.clock.now()).toISOString();
    this.refusals.push({ at, node, address, reason });
    this.refusalsTotal++;
    if (this.refusals.length > 20) this.refusals.shift();
    if (node !== null) this.nodes.get(node)?.onRefused(at, address, reason);
  }

  onAuthenticated(s: AgentSession, auth: Auth): { creds: RsyncCredentials; rsyncPort: number; rsyncTls: boolean; paths: Welcome['paths'] } {
    const name = s.node!;
    this.listener.handshaking.delete(s);
    const previous = this.sessions.get(name);
    if (previous && previous !== s) {
      this.log.warn('node connected again; closing its older connection', { node: name });
      previous.close(CLOSE.replaced, 'replaced by a newer connection');
      this.nodes.get(name)!.onDisconnect(this.clock.now());
    }
    this.sessions.set(name, s);
    // Its address may now reach the rsync daemon (rsyncd/front.ts).
    this.rsync?.front.admit(s, s.address);
    const node = this.nodes.get(name)!;
    const sameRun = auth.applied !== null && Buffer.from(auth.applied.session).equals(Buffer.from(this.session));
    node.onReady(auth.version, this.clock.now(), s.address);
    // An agent that cannot show it followed this run of the master may have missed anything.
    if (!sameRun) node.markFull();
    this.log.info('node connected', { node: name, address: s.address, version: auth.version, resume: sameRun });
    // After the welcome has gone out.
    this.clock.setTimeout(() => this.sender.pump(), 0);
    return {
      creds: this.credentials.get(name)!,
      rsyncPort: this.config.rsync.listen.port,
      rsyncTls: this.rsync?.tls === true,
      paths: this.config.paths.map((p) => ({ name: p.name, exclude: p.exclude })),
    };
  }

  onMessage(s: AgentSession, m: AgentMessage): void {
    const node = this.nodes.get(s.node!);
    if (!node) return; // removed by a reload while this frame was on its way
    const now = this.clock.now();
    switch (m.t) {
      case 'ack':
        node.onAck(m.seq, now);
        break;
      case 'result': {
        node.onResult(m.seq, m.ok, m.runs, now);
        const debugging = logs('debug');
        for (const r of m.runs) {
          if (r.kind === 'retry' || r.kind === 'fatal' || r.kind === 'refused') {
            this.log.warn('node sync failed', { node: node.name, path: r.path, kind: r.kind, exit: r.exit, message: r.message });
          } else if (debugging) {
            this.log.debug('node synced', { node: node.name, path: r.path, files: r.files, bytes: r.bytes, ms: r.durationMs });
          }
        }
        // Only this node's room changed.
        this.sender.pump([node]);
        break;
      }
      case 'progress':
        node.onProgress(m.path, m.percent, now);
        break;
      case 'reject':
        this.log.warn('node rejected a frame from the master', { node: node.name, seq: m.seq, reason: m.reason });
        node.onReject(m.reason, now);
        break;
    }
  }

  onClosed(s: AgentSession): void {
    this.listener.handshaking.delete(s);
    this.rsync?.front.release(s);
    const name = s.node;
    if (name === null) return;
    if (this.sessions.get(name) === s) {
      this.sessions.delete(name);
      this.nodes.get(name)!.onDisconnect(this.clock.now());
      this.log.info('node disconnected', { node: name });
    }
  }

  // --- signals -------------------------------------------------------------

  hup(): void {
    this.reload().catch((err: unknown) => this.log.error('reload failed; the nodes may be only partly updated, restart the master', { err }));
  }

  usr2(): void {
    this.reconcile('SIGUSR2');
  }

  /** Both TLS listeners take the files as they are now; a pair that does not load changes nothing. */
  private reloadCertificate(tls: { cert: string; key: string }): void {
    let pair: { cert: Buffer; key: Buffer };
    try {
      pair = { cert: readFileSync(tls.cert), key: readFileSync(tls.key) };
      // Checked once before either listener takes it.
      createSecureContext(pair);
    } catch (err) {
      this.log.error('reload: the TLS certificate or key does not load; still serving the previous one', { cert: tls.cert, key: tls.key, err: (err as Error).message });
      return;
    }
    this.listener.setCertificate(pair);
    this.rsync?.front.setCertificate(pair.cert, pair.key);
    this.config = { ...this.config, tls };
    this.log.info('reload: TLS certificate loaded', { cert: tls.cert });
  }

  /**
   * SIGHUP: read the config file again and apply its `nodes` (add, remove,
   * re-key mirrors) without touching the other nodes' connections, and the
   * TLS certificate and key (renewed). Anything else that changed is named in
   * the log and waits for a restart; a config with errors is refused and the
   * running one kept.
   */
  async reload(): Promise<void> {
    if (this.#stopped) return;
    const file = this.config.file;
    let next: MasterConfig;
    try {
      // The filesystem as it is now (a paused path's missing marker, say)
      // must not block a change of nodes; only the config's own errors do.
      next = loadMasterConfig(file, {
        fsChecksAsWarnings: true,
        onWarning: (p) => this.log.warn('reload: config warning', { problem: formatProblem(p) }),
      });
    } catch (err) {
      this.log.error('reload refused: the config has errors; still running with the one loaded before', { file, err: (err as Error).message });
      return;
    }
    const later = restartOnlyChanges(this.config, next);
    if (later.length > 0) this.log.warn('reload: these keys changed and take effect only at the next restart', { file, keys: later.join(', ') });
    if (this.config.tls && next.tls) this.reloadCertificate(next.tls);
    const ch = nodesChange(this.config.nodes, next.nodes);
    const gone = new Set([...ch.removed, ...ch.rekeyed]);
    // First out: their sessions, ready or in the handshake, and what they were owed.
    for (const s of [...this.sessions.values(), ...this.listener.handshaking]) {
      if (s.node === null || !gone.has(s.node)) continue;
      if (this.sessions.get(s.node) === s) this.sessions.delete(s.node);
      this.listener.handshaking.delete(s);
      s.close(CLOSE.unauthorized, ch.removed.includes(s.node) ? 'removed from the master config' : 'its key changed in the master config');
    }
    for (const name of ch.removed) {
      this.nodes.delete(name);
      this.verifiers.delete(name);
      this.credentials.delete(name);
    }
    for (const n of next.nodes) {
      if (!ch.added.includes(n.name) && !ch.rekeyed.includes(n.name)) continue;
      // A re-keyed node starts afresh too: whoever held the old key held its credentials.
      this.admit(n);
      this.credentials.set(n.name, makeCredentials([n.name]).get(n.name)!);
    }
    this.config = { ...this.config, nodes: next.nodes };
    if (ch.added.length + ch.removed.length + ch.rekeyed.length === 0) {
      this.log.info('reload: nodes unchanged', { file });
      return;
    }
    await this.rsync?.rsyncd.setCredentials(this.credentials);
    this.log.info('reload: nodes updated', { file, added: ch.added.join(',') || '-', removed: ch.removed.join(',') || '-', rekeyed: ch.rekeyed.join(',') || '-' });
  }

  /** Marks every path for a full sync on every node (drift repair, lost events). */
  reconcile(reason: string): void {
    this.log.info('full reconciliation', { reason });
    for (const n of this.nodes.values()) for (const wp of this.paths.values()) n.markFull(wp.name, { lag: false });
    this.sender.pump();
  }

  // --- status and stop -------------------------------------------------------

  status(): MasterStatus {
    const now = this.clock.now();
    return assembleStatus({
      now,
      session: this.session,
      startedAt: this.startedAt,
      batches: this.sender.batches,
      paths: [...this.paths.values()].map((wp) => wp.status()),
      rsyncd: this.rsync?.rsyncd.status() ?? null,
      rsyncTls: this.rsync?.tls === true,
      refusals: this.refusals,
      refusalsTotal: this.refusalsTotal,
      nodes: [...this.nodes.values()].map((n) => n.status(now)),
    });
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.sender.stop();
    this.reconcileTimer?.stop();
    for (const s of [...this.sessions.values(), ...this.listener.handshaking]) s.close(CLOSE.shutdown, 'master shutting down');
    await Promise.all([...this.paths.values()].map((wp) => wp.close()));
    await this.listener.close();
    await this.statusServer?.close();
    await this.rsync?.front.stop();
    await this.rsync?.rsyncd.stop();
    this.log.info('master stopped');
  }
}
