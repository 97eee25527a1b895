// The master: watches paths, turns events into signed batches, keeps every
// node's account, and runs the rsync daemon agents pull from.
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { MasterConfig, MasterPath } from '../config/types.js';
import { loadSecretKey } from '../common/keyfile.js';
import { logs, makeLogger, type Logger } from '../common/log.js';
import { ChangeSet } from '../protocol/changeset.js';
import type { PathChanges, ChangeKind } from '../protocol/changes.js';
import { encode } from '../protocol/codec.js';
import { seal } from '../protocol/envelope.js';
import { compileExcludes, type ExcludeMatcher } from '../rsync/excludes.js';
import { CLOSE, type RsyncCredentials } from '../protocol/handshake.js';
import { MAX_AGENT_FRAME, MAX_BATCH_ENTRIES } from '../protocol/limits.js';
import type { AgentMessage, Auth, Welcome } from '../protocol/messages.js';
import { parsePublicKey } from '../protocol/keys.js';
import { verifierFor, type Signer, type Verifier } from '../protocol/sign.js';
import { SOFTWARE_VERSION } from '../protocol/version.js';
import { NodeTracker } from './node-tracker.js';
import type { MasterStatus } from '../protocol/status.js';
import { AgentSession, type SessionHost } from './session.js';
import { checkRoot, type RootIdentity } from './root-guard.js';
import { makeCredentials } from './credentials.js';
import { nodesChange, restartOnlyChanges } from './reload.js';
import { loadMasterConfig } from '../config/load.js';
import { formatProblem } from '../config/errors.js';
import { RsyncDaemon } from './rsyncd.js';
import { freeLoopbackPort, RsyncTlsFront } from './rsync-tls.js';
import { startWatcher } from './watcher/index.js';
import { sendableAt } from './pacing.js';
import { startStatusServer } from './status-server.js';
import type { Watcher, WatchEvent, WatchProblem } from './watcher/types.js';

/**
 * Batches a node may have unapplied before its changes are merged instead of
 * sent. Room for several behind a running rsync lets the agent merge them into
 * its next run; with 2, only one ever queued there, the agent started it the
 * moment it reported the previous one, and every batch cost its own run.
 */
export const WINDOW = 8;
/** A node whose socket holds more than this unsent is treated as busy. */
export const MAX_BUFFERED = 4 * 1024 * 1024;
/** Unauthenticated connections allowed at once, in all and per address. */
const MAX_HANDSHAKES = 256;
const MAX_HANDSHAKES_PER_ADDRESS = 16;

export interface MasterOptions {
  log?: Logger;
  /** Override: where the secret key comes from (tests) */
  signer?: Signer;
  /** -p: no rsync daemon; log what each batch would ask agents to sync */
  dryRun?: boolean;
}

interface WatchedPath {
  config: MasterPath;
  matcher: ExcludeMatcher;
  watcher: Watcher | null;
  fresh: ChangeSet;
  identity: RootIdentity | null;
  paused: string | null;
  /** the watcher reported its root gone: its inotify watches died with the old directory or mount */
  watcherLost: boolean;
  /** a replacement watcher is starting */
  resuming: boolean;
  /** which watcher's reports count: a replaced one may still deliver */
  watcherGen: number;
  watchErrors: number;
  lastWatchProblem: { at: number; kind: string; message: string } | null;
  lastEvent: number | null;
}

export class Master implements SessionHost {
  readonly signer: Signer;
  readonly session = new Uint8Array(randomBytes(16));
  private readonly log: Logger;
  private readonly verifiers = new Map<string, Verifier>();
  readonly nodes = new Map<string, NodeTracker>();
  private readonly sessions = new Map<string, AgentSession>();
  private readonly handshaking = new Set<AgentSession>();
  private readonly paths = new Map<string, WatchedPath>();
  private readonly credentials: Map<string, RsyncCredentials>;
  /** null until start(), and in a dry run */
  private rsyncd: RsyncDaemon | null = null;
  /** set when agents reach the rsync daemon through TLS (rsync-tls.ts) */
  private rsyncTls: RsyncTlsFront | null = null;
  private server: HttpServer | HttpsServer | null = null;
  private wss: WebSocketServer | null = null;
  private seq = 0;
  private batches = 0;
  private readonly startedAt = Date.now();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushImmediate: NodeJS.Immediate | null = null;
  private lastFlush = 0;
  private freshOldest: number | null = null;
  private paceTimer: NodeJS.Timeout | null = null;
  private paceAt = Infinity;
  private reconcileTimer: NodeJS.Timeout | null = null;
  private guardTimer: NodeJS.Timeout | null = null;
  private readonly refusals: MasterStatus['refusals'] = [];
  private refusalsTotal = 0;
  private stopped = false;
  private readonly dryRun: boolean;
  private statusServer: { port: number; close(): Promise<void> } | null = null;

  constructor(
    /** replaced, `nodes` only, by reload() */
    public config: MasterConfig,
    opts: MasterOptions = {},
  ) {
    this.log = opts.log ?? makeLogger({ component: 'master' });
    this.signer = opts.signer ?? loadSecretKey(config.key);
    this.dryRun = opts.dryRun ?? false;
    for (const n of config.nodes) this.admit(n);
    for (const p of config.paths) {
      this.paths.set(p.name, {
        config: p,
        matcher: compileExcludes(p.exclude),
        watcher: null,
        fresh: new ChangeSet(config.maxPending),
        identity: null,
        paused: null,
        watcherLost: false,
        resuming: false,
        watcherGen: 0,
        watchErrors: 0,
        lastWatchProblem: null,
        lastEvent: null,
      });
    }
    // Fresh per start: credentials from an earlier run stop working.
    this.credentials = makeCredentials(config.nodes.map((n) => n.name));
  }

  /** Lets a node in: the key its handshake is checked against, and a fresh tracker. */
  private admit(n: MasterConfig['nodes'][number]): void {
    const pub = parsePublicKey(n.key);
    this.verifiers.set(n.name, verifierFor(pub));
    this.nodes.set(n.name, new NodeTracker(n.name, pub, this.config.paths.map((p) => p.name), this.config.maxPending));
  }

  private makeRsyncd(host: string, port: number, front?: number): RsyncDaemon {
    const config = this.config;
    const rsyncd = new RsyncDaemon({
      binary: config.rsync.binary,
      host,
      port,
      modules: config.paths.map((p) => ({ name: p.name, path: p.watch, excludes: p.exclude })),
      credentials: this.credentials,
      ...(front !== undefined ? { front } : {}),
    });
    rsyncd.on('log', (line: string) => this.log.debug('rsyncd', { line }));
    rsyncd.on('exit', (info: unknown) => this.log.warn('rsync daemon exited; restarting it', { info }));
    rsyncd.on('restarted', () => this.log.info('rsync daemon restarted'));
    rsyncd.on('orphan', (info: unknown) => this.log.warn('killed an rsync daemon left running by a master that died', { info }));
    return rsyncd;
  }

  private async startRsync(): Promise<void> {
    const { host, port } = this.config.rsync.listen;
    const tls = this.config.rsync.tls ? this.config.tls : undefined;
    if (!tls) {
      this.rsyncd = this.makeRsyncd(host, port);
      return this.rsyncd.start();
    }
    // Behind TLS the daemon takes a loopback port of its own.
    const backend = { host: '127.0.0.1', port: await freeLoopbackPort() };
    const rsyncd = this.makeRsyncd(backend.host, backend.port, port);
    this.rsyncd = rsyncd;
    await rsyncd.start();
    this.rsyncTls = new RsyncTlsFront({
      host,
      port,
      cert: readFileSync(tls.cert),
      key: readFileSync(tls.key),
      backend,
      onError: (what, err) => this.log.warn(`rsync over TLS: ${what} failed`, { err }),
    });
    try {
      await this.rsyncTls.start();
    } catch (err) {
      await rsyncd.stop();
      throw new Error(`cannot listen for rsync over TLS on ${host}:${port}: ${(err as Error).message}; choose another rsync.listen`);
    }
    this.log.info('rsync daemon behind TLS', { listen: `${host}:${port}` });
  }

  async start(): Promise<void> {
    for (const wp of this.paths.values()) {
      const health = checkRoot(wp.config.watch, null, wp.config.marker);
      if (!health.ok) throw new Error(`path ${wp.config.name}: ${health.reason}`);
      wp.identity = health.identity;
    }
    if (this.dryRun) this.log.warn('dry run: not starting the rsync daemon; batches are only logged');
    else await this.startRsync();
    for (const wp of this.paths.values()) await this.watch(wp);
    await this.listen();
    this.statusServer = await startStatusServer({
      host: this.config.status.listen.host,
      port: this.config.status.listen.port,
      status: () => this.status(),
      log: this.log,
    });
    if (this.config.reconcile > 0) {
      this.reconcileTimer = setInterval(() => this.reconcile('periodic reconciliation'), this.config.reconcile * 1000);
      this.reconcileTimer.unref();
    }
    this.guardTimer = setInterval(() => this.checkRoots(), 2_000);
    this.guardTimer.unref();
    this.log.info('master ready', {
      listen: `${this.config.listen.host}:${this.port}`,
      rsync: `${this.config.rsync.listen.host}:${this.config.rsync.listen.port}`,
      nodes: this.config.nodes.length,
      paths: this.config.paths.length,
    });
  }

  private async watch(wp: WatchedPath): Promise<void> {
    // Reports can arrive before startWatcher resolves.
    const gen = ++wp.watcherGen;
    wp.watcherLost = false;
    const watcher = await startWatcher(this.config.watcher, {
      root: wp.config.watch,
      ignore: (rel, isDir) => wp.matcher.isExcluded(rel, isDir),
      onEvents: (events) => {
        if (wp.watcherGen === gen) this.onEvents(wp, events);
      },
      onProblem: (p) => {
        if (wp.watcherGen === gen) this.onWatchProblem(wp, p);
      },
    });
    wp.watcher = watcher;
    this.log.info('watching', { path: wp.config.name, dir: wp.config.watch, backend: watcher.backend });
  }

  get statusPort(): number | null {
    return this.statusServer?.port ?? null;
  }

  get port(): number {
    const addr = this.server?.address();
    return typeof addr === 'object' && addr !== null ? addr.port : this.config.listen.port;
  }

  private async listen(): Promise<void> {
    const tls = this.config.tls;
    const server = tls
      ? createHttpsServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) })
      : createHttpServer();
    server.on('request', (_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('inosync master: websocket only\n');
    });
    const wss = new WebSocketServer({ server, maxPayload: MAX_AGENT_FRAME, perMessageDeflate: false, clientTracking: false });
    wss.on('error', (err) => this.log.error('websocket server error', { err }));
    wss.on('connection', (ws, req) => this.onConnection(ws, req.socket.remoteAddress ?? null));
    server.on('clientError', (_err, socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.listen.port, this.config.listen.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error('listener error', { err }));
    this.server = server;
    this.wss = wss;
  }

  private onConnection(ws: WebSocket, address: string | null): void {
    ws.on('error', () => undefined);
    if (this.stopped) return ws.terminate();
    // When full, the oldest unauthenticated connection (from this address if
    // that is what is full) makes room. A real agent authenticates within
    // milliseconds, so sockets held open to fill the slots are what goes;
    // refusing the newest instead let any 256 idle sockets keep every
    // reconnecting agent out for as long as the flood lasted.
    let oldest: AgentSession | null = null;
    let fromAddress = 0;
    for (const s of this.handshaking) {
      if (s.address !== address) continue;
      oldest ??= s;
      fromAddress++;
    }
    if (fromAddress < MAX_HANDSHAKES_PER_ADDRESS) oldest = this.handshaking.size >= MAX_HANDSHAKES ? this.handshaking.values().next().value! : null;
    if (oldest) {
      this.log.debug('too many unauthenticated connections; dropping the oldest', { address: oldest.address });
      this.handshaking.delete(oldest);
      oldest.ws.terminate();
    }
    const s = new AgentSession(ws, address, this, this.log);
    this.handshaking.add(s);
    ws.once('close', () => this.handshaking.delete(s));
  }

  // --- SessionHost -------------------------------------------------------

  verifierFor(node: string): Verifier | undefined {
    return this.verifiers.get(node);
  }

  onHello(s: AgentSession): void {
    const node = this.nodes.get(s.node!);
    node?.onConnecting(s.address, Date.now());
  }

  onRefused(node: string | null, address: string | null, reason: string): void {
    const at = new Date().toISOString();
    this.refusals.push({ at, node, address, reason });
    this.refusalsTotal++;
    if (this.refusals.length > 20) this.refusals.shift();
    if (node !== null) {
      const t = this.nodes.get(node);
      if (t) t.lastRefusal = { at, address, reason };
    }
  }

  onAuthenticated(s: AgentSession, auth: Auth): { creds: RsyncCredentials; rsyncPort: number; rsyncTls: boolean; paths: Welcome['paths'] } {
    const name = s.node!;
    this.handshaking.delete(s);
    const previous = this.sessions.get(name);
    if (previous && previous !== s) {
      this.log.warn('node connected again; closing its older connection', { node: name });
      previous.close(CLOSE.replaced, 'replaced by a newer connection');
      this.nodes.get(name)!.onDisconnect(Date.now());
    }
    this.sessions.set(name, s);
    const node = this.nodes.get(name)!;
    const sameRun = auth.applied !== null && Buffer.from(auth.applied.session).equals(Buffer.from(this.session));
    node.onReady(auth.version, Date.now(), s.address);
    // An agent that cannot show it followed this run of the master may have missed anything.
    if (!sameRun) node.markFull();
    this.log.info('node connected', { node: name, address: s.address, version: auth.version, resume: sameRun });
    setImmediate(() => this.pump());
    return {
      creds: this.credentials.get(name)!,
      rsyncPort: this.config.rsync.listen.port,
      rsyncTls: this.rsyncTls !== null,
      paths: this.config.paths.map((p) => ({ name: p.name, exclude: p.exclude })),
    };
  }

  onMessage(s: AgentSession, m: AgentMessage): void {
    const node = this.nodes.get(s.node!);
    if (!node) return; // removed by a reload while this frame was on its way
    const now = Date.now();
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
        this.pump([node]);
        break;
      }
      case 'progress':
        node.progress = { path: m.path, percent: m.percent };
        node.lastSeen = now;
        break;
      case 'reject':
        this.log.warn('node rejected a frame from the master', { node: node.name, seq: m.seq, reason: m.reason });
        node.lastError = { at: new Date(now).toISOString(), path: null, exit: null, kind: 'rejected', message: m.reason };
        break;
    }
  }

  onClosed(s: AgentSession): void {
    this.handshaking.delete(s);
    const name = s.node;
    if (name === null) return;
    if (this.sessions.get(name) === s) {
      this.sessions.delete(name);
      this.nodes.get(name)!.onDisconnect(Date.now());
      this.log.info('node disconnected', { node: name });
    }
  }

  // --- events to batches --------------------------------------------------

  private onEvents(wp: WatchedPath, events: WatchEvent[]): void {
    const allowed = this.config.events;
    const moves = allowed.includes('move');
    // inotify says IN_MODIFY or IN_ATTRIB in one breath (libuv's 'change'), so
    // the watchers report a chmod as `modify`: either kind admits both.
    const changes = allowed.includes('modify') || allowed.includes('attrib');
    let added = 0;
    for (const ev of events) {
      // A rename reaches us as delete + create, so `move` admits both.
      const admitted =
        allowed.includes(ev.kind) || (moves && (ev.kind === 'create' || ev.kind === 'delete')) || (changes && (ev.kind === 'modify' || ev.kind === 'attrib'));
      if (!admitted) continue;
      if (wp.matcher.isExcluded(ev.path, ev.isDir)) continue;
      wp.fresh.add(ev.path, kindOf(ev));
      added++;
    }
    if (added === 0) return;
    const now = Date.now();
    wp.lastEvent = now;
    this.freshOldest ??= now;
    this.scheduleFlush(now);
  }

  /** Idle: send at once (after this tick's events). Busy: at most one batch per `delay`. */
  private scheduleFlush(now: number): void {
    if (this.flushTimer || this.flushImmediate) return;
    const wait = this.lastFlush + this.config.delay * 1000 - now;
    if (wait <= 0) this.flushImmediate = setImmediate(() => this.flush());
    else this.flushTimer = setTimeout(() => this.flush(), wait);
  }

  private onWatchProblem(wp: WatchedPath, p: WatchProblem): void {
    wp.watchErrors++;
    wp.lastWatchProblem = { at: Date.now(), kind: p.kind, message: p.message };
    if (p.kind === 'root') {
      wp.watcherLost = true;
      this.pause(wp, p.message);
      return;
    }
    this.log.error('watch problem; falling back to full syncs of this path', { path: wp.config.name, kind: p.kind, message: p.message });
    wp.fresh.markFull();
    this.freshOldest ??= Date.now();
    this.scheduleFlush(Date.now());
  }

  private pause(wp: WatchedPath, reason: string): void {
    if (wp.paused !== null) return;
    wp.paused = reason;
    this.log.error('path paused: not propagating anything until its root is back', { path: wp.config.name, reason });
  }

  private checkRoots(): void {
    for (const wp of this.paths.values()) {
      const health = checkRoot(wp.config.watch, wp.identity, wp.config.marker);
      if (!health.ok) this.pause(wp, health.reason);
      else if (wp.paused !== null && !wp.resuming) void this.resume(wp);
    }
  }

  /**
   * The root is back. A watcher that lost it watches nothing any more (a
   * directory moved away and back keeps its watches, one deleted and
   * restored or a remounted filesystem does not), so it is replaced first:
   * the full sync that follows then covers whatever changed before the new
   * watcher was ready.
   */
  private async resume(wp: WatchedPath): Promise<void> {
    wp.resuming = true;
    try {
      if (wp.watcherLost) {
        const old = wp.watcher;
        wp.watcher = null;
        wp.watcherGen++; // what the old one still says no longer counts
        await old?.close();
        await this.watch(wp);
        // stop() closed the watchers it found while this one was starting.
        if (this.stopped) return void (await (wp.watcher as Watcher | null)?.close());
      }
    } catch (err) {
      // Retried at the next check; the path stays paused meanwhile.
      this.log.error('cannot watch the path again; it stays paused', { path: wp.config.name, err });
      return;
    } finally {
      wp.resuming = false;
    }
    const health = checkRoot(wp.config.watch, wp.identity, wp.config.marker);
    if (!health.ok || wp.watcherLost) return;
    this.log.info('path resumed: its root is back; every node gets a full sync of it', { path: wp.config.name });
    wp.paused = null;
    for (const n of this.nodes.values()) n.markFull(wp.config.name);
    this.pump();
  }

  hup(): void {
    this.reload().catch((err: unknown) => this.log.error('reload failed; the nodes may be only partly updated, restart the master', { err }));
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
    (this.server as HttpsServer | null)?.setSecureContext(pair);
    this.rsyncTls?.setCertificate(pair.cert, pair.key);
    this.config = { ...this.config, tls };
    this.log.info('reload: TLS certificate loaded', { cert: tls.cert });
  }

  usr2(): void {
    this.reconcile('SIGUSR2');
  }

  /**
   * SIGHUP: read the config file again and apply its `nodes` (add, remove,
   * re-key mirrors) without touching the other nodes' connections, and the
   * TLS certificate and key (renewed). Anything else that changed is named in
   * the log and waits for a restart; a config with errors is refused and the
   * running one kept.
   */
  async reload(): Promise<void> {
    if (this.stopped) return;
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
    for (const s of [...this.sessions.values(), ...this.handshaking]) {
      if (s.node === null || !gone.has(s.node)) continue;
      if (this.sessions.get(s.node) === s) this.sessions.delete(s.node);
      this.handshaking.delete(s);
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
    await this.rsyncd?.setCredentials(this.credentials);
    this.log.info('reload: nodes updated', { file, added: ch.added.join(',') || '-', removed: ch.removed.join(',') || '-', rekeyed: ch.rekeyed.join(',') || '-' });
  }

  /** Marks every path for a full sync on every node (drift repair, lost events). */
  reconcile(reason: string): void {
    this.log.info('full reconciliation', { reason });
    for (const n of this.nodes.values()) for (const wp of this.paths.values()) n.markFull(wp.config.name, { lag: false });
    this.pump();
  }

  private flush(): void {
    this.flushTimer = null;
    this.flushImmediate = null;
    if (this.stopped) return;
    const now = Date.now();
    this.lastFlush = now;
    const fresh: PathChanges[] = [];
    for (const wp of this.paths.values()) {
      if (wp.fresh.isEmpty) continue;
      if (!this.rootOk(wp)) continue; // kept in `fresh` until the root is back
      fresh.push(wp.fresh.toChanges(wp.config.name));
      wp.fresh.clear();
    }
    const oldest = this.freshOldest ?? now;
    this.freshOldest = null;
    for (const wp of this.paths.values()) if (!wp.fresh.isEmpty) this.freshOldest = oldest;
    if (fresh.length > 0) {
      const recipients: AgentSession[] = [];
      for (const node of this.nodes.values()) {
        const s = this.sessions.get(node.name);
        if (s && s.ready && !node.paced && !node.hasPending && node.inflight.length < WINDOW && s.bufferedAmount < MAX_BUFFERED) {
          recipients.push(s);
        } else {
          node.absorb(fresh, oldest);
        }
      }
      if (recipients.length > 0) this.send(recipients, fresh, oldest);
    }
    this.pump();
  }

  private rootOk(wp: WatchedPath): boolean {
    if (wp.paused !== null) return false;
    const health = checkRoot(wp.config.watch, wp.identity, wp.config.marker);
    if (!health.ok) {
      this.pause(wp, health.reason);
      return false;
    }
    return true;
  }

  /**
   * Sends each node that has room whatever it is owed, as one batch per node.
   * A paced node (pacing.ts) has room once its batch is applied and its rest
   * is over or the origin has gone quiet; a timer looks again then.
   */
  private pump(nodes: Iterable<NodeTracker> = this.nodes.values()): void {
    if (this.stopped) return;
    const now = Date.now();
    let nextLook = Infinity;
    let paused: Set<string> | null = null;
    const lastEvent = this.lastOriginEvent();
    for (const node of nodes) {
      const s = this.sessions.get(node.name);
      if (!s || !s.ready || !node.hasPending || node.inflight.length >= WINDOW || s.bufferedAmount >= MAX_BUFFERED) continue;
      if (node.paced) {
        if (node.inflight.length > 0) continue; // its result pumps again
        const at = sendableAt(node.restUntil, lastEvent);
        if (at > now) {
          nextLook = Math.min(nextLook, at);
          continue;
        }
      }
      paused ??= new Set([...this.paths.values()].filter((wp) => wp.paused !== null).map((wp) => wp.config.name));
      const { changes, oldest } = node.takePending(paused);
      if (changes.length === 0) continue;
      this.send([s], changes, oldest, now);
    }
    if (nextLook < this.paceAt) {
      if (this.paceTimer) clearTimeout(this.paceTimer);
      this.paceAt = nextLook;
      this.paceTimer = setTimeout(() => {
        this.paceTimer = null;
        this.paceAt = Infinity;
        this.pump();
      }, nextLook - now);
    }
  }

  /** The last change admitted from any path: whether the origin is busy (pacing.ts). */
  private lastOriginEvent(): number | null {
    let last: number | null = null;
    for (const wp of this.paths.values()) if (wp.lastEvent !== null) last = Math.max(last ?? 0, wp.lastEvent);
    return last;
  }

  /** `oldest` null: nothing changed on the origin (a reconciliation); the batch carries its send time. */
  private send(to: AgentSession[], changes: PathChanges[], oldest: number | null, now = Date.now()): void {
    for (const part of splitChanges(changes)) {
      const seq = ++this.seq;
      const body = encode({ t: 'batch', session: this.session, seq, to: to.map((s) => s.node!), time: oldest ?? now, changes: part });
      // Signed once, whatever the number of recipients.
      const frame = seal(this.signer, 'master->agent', body);
      this.batches++;
      if (this.dryRun) this.log.info('dry run: batch', { seq, to: to.map((s) => s.node), changes: part });
      else if (logs('debug')) this.log.debug('batch', { seq, to: to.map((s) => s.node), entries: summarize(part) });
      for (const s of to) {
        this.nodes.get(s.node!)!.recordSent(seq, part, oldest, now);
        s.sendFrame(frame);
      }
    }
  }

  // --- status -------------------------------------------------------------

  status(): MasterStatus {
    const now = Date.now();
    const rs = this.rsyncd?.status() ?? { running: false, restarts: 0, lastError: null };
    return {
      version: SOFTWARE_VERSION,
      session: Buffer.from(this.session).toString('hex'),
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      batches: this.batches,
      paths: [...this.paths.values()].map((wp) => ({
        name: wp.config.name,
        watch: wp.config.watch,
        backend: wp.watcher?.backend ?? this.config.watcher,
        paused: wp.paused,
        watchErrors: wp.watchErrors,
        lastWatchProblem: wp.lastWatchProblem && { ...wp.lastWatchProblem, at: new Date(wp.lastWatchProblem.at).toISOString() },
        lastEvent: wp.lastEvent === null ? null : new Date(wp.lastEvent).toISOString(),
      })),
      rsyncd: { running: rs.running, restarts: rs.restarts, lastError: rs.lastError ?? null, tls: this.rsyncTls !== null },
      refusals: [...this.refusals],
      refusalsTotal: this.refusalsTotal,
      nodes: [...this.nodes.values()].map((n) => {
        const s = this.sessions.get(n.name);
        const handshaking = [...this.handshaking].some((h) => h.node === n.name);
        return n.status(now, handshaking && !(s && s.ready));
      }),
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.flushImmediate) clearImmediate(this.flushImmediate);
    if (this.paceTimer) clearTimeout(this.paceTimer);
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    if (this.guardTimer) clearInterval(this.guardTimer);
    for (const s of [...this.sessions.values(), ...this.handshaking]) s.close(CLOSE.shutdown, 'master shutting down');
    await Promise.all([...this.paths.values()].map((wp) => wp.watcher?.close()));
    await new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.wss?.close();
      this.server.close(() => resolve());
      this.server.closeAllConnections?.();
    });
    await this.statusServer?.close();
    await this.rsyncTls?.stop();
    await this.rsyncd?.stop();
    this.log.info('master stopped');
  }
}

/** Entries a batch's debug line names per path: enough to follow a catch-up, bounded for a flood. */
const SUMMARY_ENTRIES = 20;

function summarize(changes: PathChanges[]): string {
  return changes
    .map((c) => {
      if (c.full) return `${c.name}:full`;
      const all = [...c.files, ...c.dirs.map((d) => d + '/'), ...c.trees.map((t) => t + '/***')];
      return `${c.name}:${all.slice(0, SUMMARY_ENTRIES).join(',')}${all.length > SUMMARY_ENTRIES ? ',...' : ''}`;
    })
    .join(' ');
}

function kindOf(ev: WatchEvent): ChangeKind {
  // A deleted plain path stays a `file` entry: rsync's perishable catch-all
  // still removes it if it was a directory on the mirror, and a batch of
  // files keeps --ignore-times. A deleted or new directory covers its subtree.
  if (ev.isDir) return ev.kind === 'create' || ev.kind === 'delete' ? 'tree' : 'dir';
  return 'file';
}

/** Keeps each batch under the per-frame entry limit. */
function splitChanges(changes: PathChanges[]): PathChanges[][] {
  const count = (c: PathChanges) => c.files.length + c.dirs.length + c.trees.length;
  if (changes.reduce((n, c) => n + count(c), 0) <= MAX_BATCH_ENTRIES) return [changes];
  const out: PathChanges[][] = [];
  for (const c of changes) {
    if (count(c) <= MAX_BATCH_ENTRIES) {
      out.push([c]);
      continue;
    }
    // Beyond what one frame may carry: a full sync of the path says the same in one line.
    out.push([{ name: c.name, full: true, files: [], dirs: [], trees: [] }]);
  }
  return out;
}
