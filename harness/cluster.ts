// A master and N agents as real processes on this machine, each with its own
// temporary directories, keys and configs. Tests drive files on the origin
// and wait until every mirror is identical.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { generateKeyFile } from '../src/common/keyfile.js';
import type { MasterStatus } from '../src/protocol/status.js';
import { findFreePort } from './ports.js';
import { snapshotTree, assertTreesEqual, type Entry } from './tree.js';
import { compileExcludes } from '../src/rsync/excludes.js';
import { descendants, signal } from './procs.js';
import { waitFor } from './wait.js';

const DIST = new URL('../src/cli/', import.meta.url).pathname;

export interface ClusterPath {
  name: string;
  exclude?: string[];
  /** the master's `marker`: must exist under the origin before the master starts */
  marker?: string;
}

export interface ClusterOptions {
  agents?: number;
  paths?: ClusterPath[];
  delay?: number;
  /** extra keys merged into the master config */
  master?: Record<string, unknown>;
  /** extra keys merged into each agent's config */
  agent?: (i: number, cluster: Cluster) => Record<string, unknown>;
  /** agent process flags, e.g. ['-p'] */
  agentFlags?: string[];
  /** agents whose key the master does not know, etc. */
  nodes?: (names: { name: string; key: string }[]) => { name: string; key: string }[];
  host?: string;
  /** argv prefix each process starts under, by host ('master', 'mirror0'...): e.g. nsenter into a namespace */
  exec?: (host: string) => string[];
  /** reach the status endpoint through this Unix socket (it may listen in another network namespace) */
  statusSocket?: string;
  /** how listener ports are chosen; default: free on `host` as this process sees it */
  pickPort?: () => Promise<number>;
}

export interface Proc {
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

export class Cluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'inosync-test-'));
  readonly host: string;
  readonly agentCount: number;
  readonly paths: ClusterPath[];
  masterPort = 0;
  rsyncPort = 0;
  statusPort = 0;
  masterKeyPub = '';
  agentKeyPubs: string[] = [];
  master: Proc | null = null;
  agents: (Proc | null)[] = [];

  constructor(readonly opts: ClusterOptions = {}) {
    this.host = opts.host ?? '127.0.0.1';
    this.agentCount = opts.agents ?? 2;
    this.paths = opts.paths ?? [{ name: 'www' }];
    this.agents = new Array<Proc | null>(this.agentCount).fill(null);
  }

  origin(path = this.paths[0]!.name): string {
    return join(this.dir, 'origin', path);
  }

  mirror(i: number, path = this.paths[0]!.name): string {
    return join(this.dir, `mirror${i}`, 'data', path);
  }

  agentName(i: number): string {
    return `mirror${i}`;
  }

  get masterConfig(): string {
    return join(this.dir, 'master.yaml');
  }

  agentConfig(i: number): string {
    return join(this.dir, `agent${i}.yaml`);
  }

  get statusUrl(): string {
    return `http://127.0.0.1:${this.statusPort}`;
  }

  async setup(): Promise<this> {
    const keys = join(this.dir, 'keys');
    mkdirSync(keys, { mode: 0o700 });
    this.masterKeyPub = generateKeyFile(join(keys, 'master.key'));
    for (let i = 0; i < this.agentCount; i++) this.agentKeyPubs.push(generateKeyFile(join(keys, `agent${i}.key`)));
    const pick = this.opts.pickPort ?? (() => findFreePort(this.host));
    this.masterPort = await pick();
    this.rsyncPort = await pick();
    this.statusPort = await (this.opts.pickPort ?? (() => findFreePort('127.0.0.1')))();
    for (const p of this.paths) mkdirSync(this.origin(p.name), { recursive: true });
    let nodes = this.agentKeyPubs.map((key, i) => ({ name: this.agentName(i), key }));
    if (this.opts.nodes) nodes = this.opts.nodes(nodes);
    const master = {
      listen: `${this.host}:${this.masterPort}`,
      key: join(keys, 'master.key'),
      status: { listen: `127.0.0.1:${this.statusPort}` },
      delay: this.opts.delay ?? 0.05,
      nodes,
      paths: this.paths.map((p) => ({ name: p.name, watch: this.origin(p.name), exclude: p.exclude ?? [], ...(p.marker ? { marker: p.marker } : {}) })),
      ...this.opts.master,
      // The daemon reads as the test's own user: a fresh machine has no
      // "inosync" account, and the trees live in private temp directories.
      rsync: { listen: `${this.host}:${this.rsyncPort}`, binary: 'rsync', user: userInfo().username, ...(this.opts.master?.['rsync'] as object | undefined) },
    };
    writeFileSync(this.masterConfig, JSON.stringify(master, null, 2));
    for (let i = 0; i < this.agentCount; i++) {
      for (const p of this.paths) mkdirSync(this.mirror(i, p.name), { recursive: true });
      const agent = {
        name: this.agentName(i),
        key: join(keys, `agent${i}.key`),
        master: { url: `ws://${this.host}:${this.masterPort}`, key: this.masterKeyPub },
        state: join(this.dir, `mirror${i}`, 'state'),
        paths: this.paths.map((p) => ({ name: p.name, target: this.mirror(i, p.name) })),
        ...this.opts.agent?.(i, this),
      };
      writeFileSync(this.agentConfig(i), JSON.stringify(agent, null, 2));
    }
    return this;
  }

  private spawnProc(cli: string, args: string[], logName: string, host: string): Proc {
    const log = join(this.dir, logName);
    const fd = openSync(log, 'a');
    const argv = [...(this.opts.exec?.(host) ?? []), process.execPath, join(DIST, cli), ...args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    return { child, log, exited };
  }

  async startMaster(extra: string[] = []): Promise<Proc> {
    this.master = this.spawnProc('master.js', ['-c', this.masterConfig, '-v', ...extra], 'master.log', 'master');
    await waitFor(async () => (await this.fetchStatus()) !== null, 20_000, 'master status endpoint', () => this.logs());
    return this.master;
  }

  startAgent(i: number, extra: string[] = []): Proc {
    const p = this.spawnProc('agent.js', ['-c', this.agentConfig(i), '-v', ...(this.opts.agentFlags ?? []), ...extra], `agent${i}.log`, this.agentName(i));
    this.agents[i] = p;
    return p;
  }

  async start(): Promise<this> {
    await this.startMaster();
    for (let i = 0; i < this.agentCount; i++) this.startAgent(i);
    await this.waitIdle();
    return this;
  }

  async stopProc(p: Proc | null, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return p?.child.exitCode ?? null;
    p.child.kill(signal);
    return await p.exited;
  }

  async stopMaster(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const code = await this.stopProc(this.master, signal);
    this.master = null;
    return code;
  }

  async stopAgent(i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    const code = await this.stopProc(this.agents[i] ?? null, signal);
    this.agents[i] = null;
    return code;
  }

  /** Sends the master `sig`; resolves once what it logs from then on matches `what`. */
  async signalMaster(sig: NodeJS.Signals, what: RegExp, timeoutMs = 10_000): Promise<void> {
    const log = this.master!.log;
    const from = readFileSync(log, 'utf8').length;
    this.master!.child.kill(sig);
    await waitFor(() => what.test(readFileSync(log, 'utf8').slice(from)), timeoutMs, `the master to log ${what} after ${sig}`);
  }

  async fetchStatus(): Promise<MasterStatus | null> {
    const text = await this.fetchText('/status');
    return text === null ? null : (JSON.parse(text) as MasterStatus);
  }

  /** GET a path of the status endpoint; null when it does not answer 200. */
  async fetchText(path: string): Promise<string | null> {
    const socketPath = this.opts.statusSocket;
    if (socketPath === undefined) {
      try {
        const res = await fetch(`${this.statusUrl}${path}`, { signal: AbortSignal.timeout(2_000) });
        return res.ok ? await res.text() : null;
      } catch {
        return null;
      }
    }
    return await new Promise((resolve) => {
      const req = request({ socketPath, path, timeout: 2_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(res.statusCode === 200 ? body : null));
        res.on('error', () => resolve(null));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(null));
      req.end();
    });
  }

  /** Until every running agent's node is connected with nothing pending or in flight. */
  async waitIdle(timeoutMs = 60_000, nodes?: number[]): Promise<MasterStatus> {
    let last: MasterStatus | null = null;
    const which = nodes ?? [...this.agents.keys()].filter((i) => this.agents[i] !== null);
    await waitFor(
      async () => {
        last = await this.fetchStatus();
        if (!last) return false;
        return which.every((i) => {
          const n = last!.nodes.find((x) => x.name === this.agentName(i));
          return n !== undefined && n.state === 'idle' && n.pending === 0 && n.inFlight === 0;
        });
      },
      timeoutMs,
      'nodes idle',
      () => `${JSON.stringify(last?.nodes, null, 1)}\n${this.logs()}`,
    );
    return last!;
  }

  /** Until mirror i equals the origin (for every path), then a final strict comparison. */
  async waitConverged(i: number | number[] = [...this.agents.keys()], timeoutMs = 60_000): Promise<void> {
    const which = Array.isArray(i) ? i : [i];
    for (const p of this.paths) {
      await waitFor(
        async () => {
          const o = await snapshotTree(this.origin(p.name));
          for (const m of which) {
            try {
              assertTreesEqual(o, await snapshotTree(this.mirror(m, p.name)), { ignore: this.ignoredFor(p, o) });
            } catch {
              return false;
            }
          }
          return true;
        },
        timeoutMs,
        `mirrors ${which.join(',')} converged on ${p.name}`,
        async () => {
          const o = await snapshotTree(this.origin(p.name));
          const lines: string[] = [];
          for (const m of which) {
            try {
              assertTreesEqual(o, await snapshotTree(this.mirror(m, p.name)), { ignore: this.ignoredFor(p, o) });
            } catch (err) {
              lines.push(`mirror${m}: ${(err as Error).message}`);
            }
          }
          return lines.join('\n') + '\n' + this.logs();
        },
      );
    }
  }

  /** Excluded paths exist on the origin but must never reach a mirror. */
  private ignoredFor(p: ClusterPath, origin: Map<string, Entry>): (rel: string) => boolean {
    const m = compileExcludes(p.exclude ?? []);
    return (rel) => {
      const e = origin.get(rel);
      return e !== undefined && m.matchesSelf(rel, e.type === 'dir');
    };
  }

  logs(lines = 40): string {
    const out: string[] = [];
    for (const p of [this.master, ...this.agents]) {
      if (!p) continue;
      try {
        const text = readFileSync(p.log, 'utf8').trimEnd().split('\n');
        out.push(`--- ${p.log} (last ${lines} lines)\n${text.slice(-lines).join('\n')}`);
      } catch {
        // no log yet
      }
    }
    return out.join('\n');
  }

  async cleanup(): Promise<void> {
    // A killed master leaves its rsync daemon (own process group) and a killed
    // agent its rsync clients running: find them while their parents live.
    const orphans = [this.master, ...this.agents].flatMap((p) => (p?.child.pid ? descendants(p.child.pid) : []));
    await Promise.all([this.stopMaster('SIGKILL'), ...this.agents.map((_, i) => this.stopAgent(i, 'SIGKILL'))]);
    for (const o of orphans) signal(o.pid, 'SIGKILL');
    if (process.env.INOSYNC_KEEP_TEST_DIRS) process.stderr.write(`kept ${this.dir}\n`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}
