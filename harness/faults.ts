// Fault injection against a Cluster, shared by test/faults.test.ts and the
// soak script: hard kills, a killed rsync daemon, full disks, lowered inotify
// limits, and clusters whose hosts live in a Lab's network namespaces.
import { spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, lstatSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type ClusterOptions } from './cluster.js';
import { sleep, waitFor } from './wait.js';
import type { Lab } from './netns.js';
import { descendants, isAlive, rsyncDaemonOf, signal, waitGone } from './procs.js';

/**
 * A cluster whose master and agents ('master', 'mirror0'...) run on the lab's
 * hosts; `wrap` adds a per-host prefix inside the namespace (e.g. a user
 * namespace). Set up, with the status endpoint reachable, but not started.
 */
export async function labCluster(lab: Lab, opts: ClusterOptions & { wrap?: (host: string) => string[] } = {}): Promise<Cluster> {
  const { wrap, ...rest } = opts;
  // Each namespace has all ports to itself.
  let port = 17000;
  const options: ClusterOptions = {
    ...rest,
    host: lab.address('master'),
    exec: (host) => [...lab.prefix(host), ...(wrap?.(host) ?? [])],
    ...(lab.isolated ? { pickPort: async () => port++ } : {}),
  };
  const c = new Cluster(options);
  if (lab.isolated) {
    // The status server listens on the master namespace's loopback; the
    // socket lives in the cluster's directory, so cleanup() removes it. The
    // Cluster reads the option when it fetches, so it can be set now.
    options.statusSocket = join(c.dir, 'status.sock');
  }
  await c.setup();
  if (lab.isolated) await lab.forward('master', c.statusPort, options.statusSocket!);
  return c;
}

/**
 * kill -9 of an agent the way a cgroup kill (systemd, the OOM killer on the
 * unit) does it: the agent and the rsync it was running, all at once.
 *
 * With `when`, the tree is frozen (SIGSTOP) first and killed only if `when()`
 * holds while nothing can move, e.g. "rsync has a temporary file open";
 * otherwise it is thawed and tried again. Checking first and killing after
 * races with rsync: it may finish the file in between, or clean up its
 * temporary file as the first of its processes dies.
 */
export async function hardKillAgent(c: Cluster, i: number, when?: () => boolean, timeoutMs = 30_000): Promise<number[]> {
  const p = c.agents[i];
  if (!p?.child.pid) throw new Error(`agent ${i} is not running`);
  const pid = p.child.pid;
  const tree = (): number[] => [pid, ...descendants(pid).map((d) => d.pid)];
  let frozen = tree();
  if (when) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      frozen = tree();
      for (const q of frozen) signal(q, 'SIGSTOP');
      // A child forked while we stopped the others is stopped on the next lap.
      const again = tree();
      for (const q of again) if (!frozen.includes(q)) signal(q, 'SIGSTOP');
      frozen = again;
      if (when()) break;
      for (const q of frozen) signal(q, 'SIGCONT');
      if (Date.now() > deadline) throw new Error(`agent ${i}: the moment to kill it never came within ${timeoutMs} ms`);
      await sleep(10);
    }
  }
  // Deepest first, so that unfrozen, rsync's receiver does not see its
  // generator die and remove its temporary file.
  const below = frozen.filter((q) => q !== pid).reverse();
  for (const q of below) signal(q, 'SIGKILL');
  await c.stopAgent(i, 'SIGKILL');
  await waitGone(below);
  return frozen;
}

/**
 * kill -9 of the master alone, as a crash leaves it: its rsync daemon (its
 * own process group) survives as an orphan and still holds the port.
 */
export async function hardKillMaster(c: Cluster): Promise<{ daemon: number | null; orphanDaemon: number | null }> {
  const pid = c.master?.child.pid;
  if (!pid) throw new Error('the master is not running');
  const daemon = rsyncDaemonOf(pid);
  await c.stopMaster('SIGKILL');
  // The daemon gets SIGKILL when its master dies (setpriv --pdeathsig): usually already gone here.
  return { daemon: daemon?.pid ?? null, orphanDaemon: daemon && isAlive(daemon.pid) ? daemon.pid : null };
}

/** kill -9 of the rsync daemon under a running master; resolves with its pid. */
export async function killRsyncDaemon(c: Cluster): Promise<number> {
  const pid = c.master?.child.pid;
  if (!pid) throw new Error('the master is not running');
  let daemon = rsyncDaemonOf(pid);
  // Right after a (re)start the supervisor may still be launching it.
  if (!daemon) {
    await waitFor(() => (daemon = rsyncDaemonOf(pid)) !== null, 10_000, 'the master to have an rsync daemon');
  }
  signal(daemon!.pid, 'SIGKILL');
  await waitGone([daemon!.pid]);
  return daemon!.pid;
}

/** rsync's temporary files (`.name.XXXXXX`) anywhere under `dir`, relative paths. */
export function rsyncTempFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (abs: string, rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(abs);
    } catch {
      return;
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (/^\..+\.[A-Za-z0-9]{6}$/.test(n)) out.push(r);
      try {
        if (lstatSync(join(abs, n)).isDirectory()) walk(join(abs, n), r);
      } catch {
        // gone meanwhile
      }
    }
  };
  walk(dir, '');
  return out;
}

function run(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
}

/** Why this process cannot mount a tmpfs, or null when it can. */
export function whyNoMounts(): string | null {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  return null;
}

export function mountTmpfs(dir: string, size: string): void {
  run(['mount', '-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
}

export function bindMount(from: string, to: string): void {
  run(['mount', '--bind', from, to]);
}

/** Lazy: a transfer still inside it must not make the unmount fail. */
export function unmount(dir: string): void {
  run(['umount', '-l', dir]);
}

export function isMountPoint(dir: string): boolean {
  return spawnSync('mountpoint', ['-q', dir]).status === 0;
}

/** Why a user namespace with its own inotify limit cannot be made here, or null. */
export function whyNoUserNamespaces(): string | null {
  if (process.platform !== 'linux') return 'user namespaces need Linux';
  if (spawnSync('unshare', ['--user', 'true']).status !== 0) return 'cannot create a user namespace (unshare --user)';
  // The full-range mapping below is written from outside, which takes root.
  if (process.getuid?.() !== 0) return 'mapping every id into a user namespace needs root';
  return null;
}

/**
 * argv prefix: runs the program in a user namespace of its own whose
 * max_inotify_watches is `limit` (the limit is per namespace; the rest of the
 * machine keeps its own). Unlike `unshare --map-root-user`, which denies
 * setgroups(2) and so breaks the rsync daemon (it drops supplementary groups
 * before serving), the mapping is written from outside by root, covering
 * every id and leaving setgroups allowed. The program keeps the pid of the
 * prefix's first process, so signals reach it directly.
 */
export function watchLimitPrefix(dir: string, limit: number): string[] {
  const script = join(dir, 'watch-limit.sh');
  writeFileSync(
    script,
    `#!/bin/sh
# Stage 3: mapped, root inside: lower the limit and become the program.
if [ "$INOSYNC_USERNS_STAGE" = mapped ]; then
  unset INOSYNC_USERNS_STAGE
  echo ${limit} > /proc/sys/user/max_inotify_watches || exit 97
  exec "$@"
fi
# Stage 2: inside the new namespace; ids are unmapped until stage 1's helper
# writes the maps, and only an exec after that gains root's capabilities there.
if [ "$INOSYNC_USERNS_STAGE" = new ]; then
  until grep -q . /proc/self/gid_map; do sleep 0.01; done
  INOSYNC_USERNS_STAGE=mapped exec sh "$0" "$@"
fi
# Stage 1: a helper writes the maps once this very process has unshared.
( i=0
  until echo "0 0 4294967295" > /proc/$$/uid_map 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 2000 ] && exit 1; sleep 0.005
  done
  echo "0 0 4294967295" > /proc/$$/gid_map ) &
INOSYNC_USERNS_STAGE=new exec unshare --user -- sh "$0" "$@"
`,
  );
  chmodSync(script, 0o755);
  return ['sh', script];
}
