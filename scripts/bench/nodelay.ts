// nodelay: what TCP_NODELAY is worth on a one-file pull over loopback. The
// master's rsync daemon always sets it (`socket options = TCP_NODELAY`); a
// second daemon from the same rendered config without that line shows what
// each side contributes, and the agent's side is rsync's --sockopts. The four
// combinations are sampled in turn so that machine noise hits them alike.
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeCredentials } from '../../src/master/rsyncd/credentials.js';
import { accepts } from '../../src/master/rsyncd/port-probe.js';
import { RsyncDaemon } from '../../src/master/rsyncd/daemon.js';
import { excludeFilePath, preXferFilePath, renderRsyncdConf, secretsFilePath } from '../../src/rsync/daemon-conf.js';
import { findFreePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';
import { ratioRow, round, scratchDir, summary, track, type Ctx, type WorkloadResult } from './lib.js';

const HOST = '127.0.0.1';

/** One pull of `url` into `dest`, spawn to exit, in ms. */
function pull(args: string[], password: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('rsync', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', RSYNC_PASSWORD: password } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`rsync ${args.join(' ')} failed (${code}): ${stderr.trim()}`))));
  });
}

export async function nodelay(ctx: Ctx): Promise<WorkloadResult> {
  const runs = ctx.quick ? 10 : 40;
  const root = scratchDir('nodelay');
  const src = join(root, 'src');
  const dest = join(root, 'dest');
  mkdirSync(src);
  mkdirSync(dest);
  writeFileSync(join(src, 'hello.txt'), 'hello\n');
  const modules = [{ name: 'data', path: src, excludes: [] }];
  const creds = makeCredentials(['bench']);
  const cred = creds.get('bench')!;
  const port = await findFreePort(HOST);
  const daemon = new RsyncDaemon({ binary: 'rsync', host: HOST, port, modules, credentials: creds });
  const untrack = track({ cleanup: () => daemon.stop() });
  let bare: ReturnType<typeof spawn> | null = null;
  try {
    await daemon.start();
    // The bare daemon: the same rendered files, without the socket options line.
    const bareDir = join(root, 'bare');
    mkdirSync(bareDir, { mode: 0o700 });
    const own = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    const files = renderRsyncdConf({ modules, users: [...creds.values()], runAs: own, dir: bareDir, privileged: own.uid === 0 });
    writeFileSync(join(bareDir, 'rsyncd.conf'), files.conf.replace(/^socket options = .*$/m, ''), { mode: 0o600 });
    writeFileSync(secretsFilePath(bareDir), files.secrets, { mode: 0o600 });
    for (const [n, c] of files.excludeFiles) writeFileSync(excludeFilePath(bareDir, n), c, { mode: 0o600 });
    writeFileSync(preXferFilePath(bareDir), files.preXfer, { mode: 0o700 });
    const barePort = await findFreePort(HOST);
    bare = spawn('rsync', ['--daemon', '--no-detach', `--config=${join(bareDir, 'rsyncd.conf')}`, `--port=${barePort}`, `--address=${HOST}`], { stdio: 'ignore' });
    await waitFor(() => accepts(HOST, barePort), 10_000, 'the daemon without TCP_NODELAY');

    // The daemon serves the module root only: the one file is picked by a filter, as agents do.
    const url = (p: number): string => `rsync://${cred.user}@${HOST}:${p}/data/`;
    const combos = {
      both: { port, sockopts: true },
      daemonOnly: { port, sockopts: false },
      clientOnly: { port: barePort, sockopts: true },
      neither: { port: barePort, sockopts: false },
    } as const;
    const samples: Record<keyof typeof combos, number[]> = { both: [], daemonOnly: [], clientOnly: [], neither: [] };
    for (let i = 0; i < runs; i++) {
      for (const [name, c] of Object.entries(combos) as [keyof typeof combos, (typeof combos)[keyof typeof combos]][]) {
        // A changed mtime: every pull transfers the file.
        const t = new Date(Date.now() - 10_000 * (i + 1));
        utimesSync(join(src, 'hello.txt'), t, t);
        samples[name].push(await pull(['-a', ...(c.sockopts ? ['--sockopts=TCP_NODELAY'] : []), '--include=/hello.txt', '--exclude=*', url(c.port), `${dest}/`], cred.password));
      }
    }
    const s = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summary(v)])) as Record<keyof typeof combos, ReturnType<typeof summary>>;
    for (const [k, v] of Object.entries(s)) ctx.log(`  ${k}: median ${round(v.p50, 2)} ms, mean ${round(v.mean, 2)} ms`);
    const base = 'neither side sets TCP_NODELAY';
    return {
      name: 'nodelay',
      rows: [
        ratioRow('nodelay', 'one-file pull, daemon TCP_NODELAY + client --sockopts=TCP_NODELAY, as agents pull (median)', s.both.p50, 'ms', s.neither.p50, base),
        ratioRow('nodelay', 'one-file pull, daemon TCP_NODELAY only (median)', s.daemonOnly.p50, 'ms', s.neither.p50, base),
        ratioRow('nodelay', 'one-file pull, client --sockopts=TCP_NODELAY only (median)', s.clientOnly.p50, 'ms', s.neither.p50, base),
      ],
      notes: [
        `${runs} pulls of a 6-byte file per combination over loopback, spawn to exit, the combinations in turn; the daemon with TCP_NODELAY is the master's (src/master/rsyncd/daemon.ts), the one without it the same rendered config without its socket options line`,
      ],
      data: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map((x) => round(x, 2))])),
    };
  } finally {
    bare?.kill('SIGKILL');
    await daemon.stop();
    untrack();
    rmSync(root, { recursive: true, force: true });
  }
}
