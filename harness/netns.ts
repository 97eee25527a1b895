// Several hosts on one machine: a network namespace per host, each with a
// veth link to a bridge that lives in a namespace of its own, so a test can
// cut one host's link without touching the machine's network. Files stay on
// the shared filesystem, so trees can be compared directly.
//
// Where namespaces cannot be made (not root, no `ip`/`nsenter`, no
// permission), a Lab says so loudly and falls back to loopback: every host is
// 127.0.0.1 and link faults are unavailable (`linkDown` throws).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { isAlive, signal } from './procs.js';
import { sleep } from './wait.js';

/** Every namespace a Lab makes starts with this, then the pid of the process that made it. */
export const NS_PREFIX = 'inosynclab-';
/** Addresses exist only inside the lab's namespaces; never routed from the root namespace. */
const SUBNET = '10.231.0';
const FORWARDER = new URL('./ns-forward.js', import.meta.url).pathname;

let labs = 0;
const open = new Set<Lab>();
let exitHooked = false;

export interface LabHost {
  name: string;
  /** network namespace, null in the loopback fallback */
  ns: string | null;
  address: string;
}

export class Lab {
  private readonly hostMap = new Map<string, LabHost>();
  private readonly helpers = new Set<ChildProcess>();
  private closed = false;

  private constructor(
    /** why namespaces are not used, or null when they are */
    readonly fallback: string | null,
    readonly bridgeNs: string | null,
    hosts: LabHost[],
  ) {
    for (const h of hosts) this.hostMap.set(h.name, h);
  }

  get isolated(): boolean {
    return this.fallback === null;
  }

  /** For test names: a run on loopback must never look like a multi-host run. */
  get label(): string {
    return this.isolated ? 'network namespaces' : 'loopback fallback';
  }

  get hosts(): LabHost[] {
    return [...this.hostMap.values()];
  }

  /**
   * Hosts `names`, each in its own namespace on a shared bridge; the first
   * gets .1, the next .2 and so on. Leftovers of earlier runs that crashed
   * are removed first.
   */
  static async create(names: string[]): Promise<Lab> {
    const reason = whyNoNamespaces();
    if (reason !== null) return Lab.loopback(names, reason);
    removeLeftovers();
    const base = `${NS_PREFIX}${process.pid}-${labs++}-`;
    const bridgeNs = `${base}bridge`;
    const hosts = names.map((name, i) => ({ name, ns: `${base}${name}`, address: `${SUBNET}.${i + 1}` }));
    const lab = new Lab(null, bridgeNs, hosts);
    open.add(lab);
    hookExit();
    try {
      ip('netns', 'add', bridgeNs);
      ip('-n', bridgeNs, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', bridgeNs, 'link', 'set', 'br0', 'up');
      ip('-n', bridgeNs, 'link', 'set', 'lo', 'up');
      hosts.forEach((h, i) => {
        ip('netns', 'add', h.ns);
        // Created straight inside the two namespaces: no name in the root
        // namespace can clash with a concurrent run.
        ip('link', 'add', 'eth0', 'netns', h.ns, 'type', 'veth', 'peer', 'name', `port${i}`, 'netns', bridgeNs);
        ip('-n', bridgeNs, 'link', 'set', `port${i}`, 'master', 'br0');
        ip('-n', bridgeNs, 'link', 'set', `port${i}`, 'up');
        ip('-n', h.ns, 'link', 'set', 'lo', 'up');
        ip('-n', h.ns, 'addr', 'add', `${h.address}/24`, 'dev', 'eth0');
        ip('-n', h.ns, 'link', 'set', 'eth0', 'up');
      });
      // The bridge needs a moment before it forwards; wait until every host reaches the first.
      const first = hosts[0]!;
      for (const h of hosts.slice(1)) await lab.waitReachable(h.name, first.address);
    } catch (err) {
      lab.closeSync();
      const why = `could not build the namespaces: ${(err as Error).message}`;
      return Lab.loopback(names, why);
    }
    return lab;
  }

  private static loopback(names: string[], reason: string): Lab {
    console.warn(
      `\n*** inosync multi-host harness: LOOPBACK FALLBACK — ${reason}.\n` +
        `*** Every host runs on 127.0.0.1 in the root network namespace; link faults are not exercised.\n`,
    );
    return new Lab(reason, null, names.map((name) => ({ name, ns: null, address: '127.0.0.1' })));
  }

  host(name: string): LabHost {
    const h = this.hostMap.get(name);
    if (!h) throw new Error(`no host ${name} in this lab (${[...this.hostMap.keys()].join(', ')})`);
    return h;
  }

  address(name: string): string {
    return this.host(name).address;
  }

  /**
   * argv prefix that runs a long-lived program inside the host's namespace.
   * nsenter switches only the network namespace; `ip netns exec` would also
   * give the program a mount namespace of its own, and with a private root
   * mount (containers) later mounts by the test (tmpfs targets, unmounted
   * roots) would then never reach it.
   */
  prefix(name: string): string[] {
    const h = this.host(name);
    return h.ns === null ? [] : ['nsenter', `--net=/run/netns/${h.ns}`, '--'];
  }

  /** Runs a short command inside the host's namespace (`ip netns exec`); returns stdout. */
  run(name: string, argv: string[]): string {
    const h = this.host(name);
    const full = h.ns === null ? argv : ['ip', 'netns', 'exec', h.ns, ...argv];
    const r = spawnSync(full[0]!, full.slice(1), { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`${full.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.error?.message}`);
    return r.stdout;
  }

  linkDown(name: string): void {
    this.link(name, 'down');
  }

  linkUp(name: string): void {
    this.link(name, 'up');
  }

  private link(name: string, state: 'up' | 'down'): void {
    if (!this.isolated) throw new Error(`cannot take a link ${state} in the loopback fallback (${this.fallback})`);
    this.run(name, ['ip', 'link', 'set', 'eth0', state]);
  }

  /** Until a ping from `name` crosses the bridge. Without ping, connections retry anyway. */
  private async waitReachable(name: string, address: string): Promise<void> {
    if (!hasPing()) return;
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = spawnSync('ip', ['netns', 'exec', this.host(name).ns!, 'ping', '-c', '1', '-W', '1', address], { stdio: 'ignore' });
      if (r.status === 0) return;
      if (Date.now() > deadline) throw new Error(`${name} cannot reach ${address} over the bridge`);
      await sleep(50);
    }
  }

  /**
   * Makes `host:port` inside the host's namespace reachable from the test
   * process as a Unix socket (filesystem sockets cross network namespaces).
   * The forwarder exits with the test process (its stdin closes).
   */
  async forward(name: string, port: number, socketPath: string, target = '127.0.0.1'): Promise<void> {
    rmSync(socketPath, { force: true });
    const argv = [...this.prefix(name), process.execPath, FORWARDER, socketPath, target, String(port)];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
    this.helpers.add(child);
    child.on('exit', () => this.helpers.delete(child));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`status forwarder exited with ${code}`)));
      child.once('error', reject);
    });
  }

  /** Kills everything still running inside the namespaces and removes them. */
  async close(): Promise<void> {
    this.closeSync();
  }

  closeSync(): void {
    if (this.closed) return;
    this.closed = true;
    open.delete(this);
    for (const c of this.helpers) c.kill('SIGKILL');
    const names = [...this.hosts.map((h) => h.ns), this.bridgeNs].filter((n): n is string => n !== null);
    destroyNamespaces(names);
  }
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
}

let pingKnown: boolean | null = null;
function hasPing(): boolean {
  pingKnown ??= spawnSync('sh', ['-c', 'command -v ping'], { stdio: 'ignore' }).status === 0;
  return pingKnown;
}

/** Why a Lab would fall back to loopback here, or null when it can use namespaces. */
export function whyNoNamespaces(): string | null {
  if (process.env.INOSYNC_NO_NETNS) return 'INOSYNC_NO_NETNS is set';
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return `network namespaces need root, this runs as uid ${process.getuid?.()}`;
  for (const tool of ['ip', 'nsenter']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) return `"${tool}" is not installed`;
  }
  // Permission (a container without CAP_SYS_ADMIN, seccomp): try once.
  const probe = `${NS_PREFIX}${process.pid}-probe`;
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (r.status !== 0) return `"ip netns add" is not permitted here: ${(r.stderr || '').trim()}`;
  spawnSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  return null;
}

function listNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return r.stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(NS_PREFIX));
}

/** Namespaces of ours whose creator is gone: a run that crashed or was killed. */
function removeLeftovers(): void {
  const dead = listNamespaces().filter((n) => {
    const pid = Number(/^(\d+)-/.exec(n.slice(NS_PREFIX.length))?.[1] ?? NaN);
    return Number.isInteger(pid) && pid !== process.pid && !isAlive(pid);
  });
  if (dead.length > 0) {
    console.warn(`inosync multi-host harness: removing ${dead.length} namespaces left by earlier runs: ${dead.join(', ')}`);
    destroyNamespaces(dead);
  }
}

function destroyNamespaces(names: string[]): void {
  for (let round = 0; round < 50; round++) {
    let left = 0;
    for (const ns of names) {
      const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
      for (const pid of r.stdout?.split('\n').filter(Boolean) ?? []) {
        signal(Number(pid), 'SIGKILL');
        left++;
      }
    }
    if (left === 0) break;
    spawnSync('sleep', ['0.05']);
  }
  for (const ns of names) {
    if (existsSync(`/run/netns/${ns}`)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const closeAll = (): void => {
    for (const lab of [...open]) lab.closeSync();
  };
  process.on('exit', closeAll);
  // Without a handler these end the process without an 'exit' event; with one
  // they would not end it at all, so the signal is raised again afterwards.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      closeAll();
      process.kill(process.pid, sig);
    });
  }
}
