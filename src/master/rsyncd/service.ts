// The rsync daemon agents pull from, on loopback behind the front (front.ts)
// in every mode; the front speaks TLS when configured.
import { readFileSync } from 'node:fs';
import { DEFAULT_RSYNC_USER, lookupRsyncAccount } from '../../config/rsync-account.js';
import type { MasterConfig } from '../../config/types.js';
import type { Logger } from '../../common/log.js';
import type { RsyncCredentials } from '../../protocol/handshake.js';
import { RsyncDaemon } from './daemon.js';
import { DAEMON_MAX_CONNECTIONS, freeLoopbackPort, RsyncFront } from './front.js';

export interface RsyncService {
  rsyncd: RsyncDaemon;
  /** the public rsync port: admits only addresses with an authenticated session */
  front: RsyncFront;
  /** whether the front speaks TLS */
  tls: boolean;
}

function makeRsyncd(config: MasterConfig, credentials: ReadonlyMap<string, RsyncCredentials>, log: Logger, port: number, front: number): RsyncDaemon {
  const rsyncd = new RsyncDaemon({
    binary: config.rsync.binary,
    host: '127.0.0.1',
    port,
    modules: config.paths.map((p) => ({ name: p.name, path: p.watch, excludes: p.exclude })),
    credentials,
    front,
    maxConnections: DAEMON_MAX_CONNECTIONS,
    ...rsyncAccount(config),
  });
  rsyncd.on('log', (line: string) => log.debug('rsyncd', { line }));
  rsyncd.on('exit', (info: unknown) => log.warn('rsync daemon exited; restarting it', { info }));
  rsyncd.on('restarted', () => log.info('rsync daemon restarted'));
  rsyncd.on('orphan', (info: unknown) => log.warn('killed an rsync daemon left running by a master that died', { info }));
  return rsyncd;
}

/**
 * As root, the daemon reads as rsync.user/rsync.group; anyone else cannot
 * switch, and the daemon reads as the master's own, already unprivileged, user.
 */
function rsyncAccount(config: MasterConfig): { runAs?: { uid: number; gid: number } } {
  if (process.getuid?.() !== 0) return {};
  const account = lookupRsyncAccount(config.rsync.user ?? DEFAULT_RSYNC_USER, config.rsync.group);
  if ('problem' in account) throw new Error(`${config.file}: rsync.${account.key}: ${account.problem}`);
  return { runAs: { uid: account.uid, gid: account.gid } };
}

export async function startRsyncService(config: MasterConfig, credentials: ReadonlyMap<string, RsyncCredentials>, log: Logger): Promise<RsyncService> {
  const { host, port } = config.rsync.listen;
  const tlsFiles = config.rsync.tls ? config.tls : undefined;
  const backend = { host: '127.0.0.1', port: await freeLoopbackPort() };
  const rsyncd = makeRsyncd(config, credentials, log, backend.port, port);
  await rsyncd.start();
  const front = new RsyncFront({
    host,
    port,
    backend,
    tls: tlsFiles ? { cert: readFileSync(tlsFiles.cert), key: readFileSync(tlsFiles.key) } : undefined,
    onError: (what, err) => log.warn(`rsync front: ${what} failed`, { err }),
    onDropped: (address, reason) => log.debug('rsync front: connection refused or closed', { address, reason }),
  });
  try {
    await front.start();
  } catch (err) {
    await rsyncd.stop();
    throw new Error(`cannot listen for rsync on ${host}:${port}: ${(err as Error).message}; choose another rsync.listen`);
  }
  if (tlsFiles) log.info('rsync daemon behind TLS', { listen: `${host}:${port}` });
  return { rsyncd, front, tls: tlsFiles !== undefined };
}
