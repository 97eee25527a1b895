// The master's rsync daemon reads as rsync.user, not as root (issue 10, item 5):
// the real daemon started the way the master starts it, pulled with credentials.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MasterConfig } from '../src/config/types.js';
import { makeCredentials } from '../src/master/rsyncd/credentials.js';
import { startRsyncService, type RsyncService } from '../src/master/rsyncd/service.js';
import { rsync } from '../harness/security.js';
import { findFreePort } from '../harness/ports.js';
import { quietLog } from '../harness/quiet-log.js';

const HOST = '127.0.0.1';
const isRoot = process.getuid?.() === 0;


/** The `uid = ` and `gid = ` lines of the running daemon's rsyncd.conf. */
function daemonIds(service: RsyncService): string[] {
  const pid = service.rsyncd.status().pid!;
  const conf = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').find((a) => a.startsWith('--config='))!.slice('--config='.length);
  return readFileSync(conf, 'utf8').split('\n').filter((l) => /^(uid|gid) = /.test(l));
}

describe('the rsync daemon reads as rsync.user', { skip: isRoot ? false : 'needs root: only root can switch the daemon to another user' }, () => {
  let root: string;
  const services: RsyncService[] = [];

  function config(port: number, rsync: Partial<MasterConfig['rsync']>): MasterConfig {
    return {
      file: join(root, 'master.yaml'),
      listen: { host: HOST, port: 1 },
      key: join(root, 'master.key'),
      rsync: { listen: { host: HOST, port }, binary: 'rsync', tls: false, ...rsync },
      status: { listen: { host: HOST, port: 2 } },
      delay: 0.05,
      events: ['create', 'modify', 'delete', 'move', 'attrib'],
      watcher: 'inotify',
      reconcile: 0,
      maxPending: 10000,
      nodes: [{ name: 'm1', key: 'x' }],
      paths: [{ name: 'www', watch: join(root, 'www'), exclude: [] }],
    };
  }

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'inosync-account-'));
    chmodSync(root, 0o755);
    mkdirSync(join(root, 'www'));
    writeFileSync(join(root, 'www', 'public.txt'), 'public\n');
    writeFileSync(join(root, 'www', 'root-only.txt'), 'root only\n', { mode: 0o600 });
    chmodSync(join(root, 'www', 'root-only.txt'), 0o600);
  });

  after(async () => {
    for (const s of services) {
      await s.front.stop();
      await s.rsyncd.stop();
    }
    rmSync(root, { recursive: true, force: true });
  });

  test('rsync.user: nobody: transfers run as uid 65534 and a root-only file is not served', async () => {
    const port = await findFreePort(HOST);
    const creds = makeCredentials(['m1']);
    const service = await startRsyncService(config(port, { user: 'nobody', group: 'nogroup' }), creds, quietLog);
    services.push(service);
    assert.deepEqual(daemonIds(service), ['uid = 65534', 'gid = 65534']);
    // The front admits an address only while it has an authenticated session, as the master tells it.
    service.front.admit({}, HOST);
    const cred = creds.get('m1')!;
    const d = join(root, 'dest');
    mkdirSync(d);
    const r = await rsync(['-a', `rsync://${cred.user}@${HOST}:${port}/www/`, `${d}/`], cred.password);
    assert.equal(r.code, 23, 'a partial transfer: the 0600 file is unreadable to nobody');
    assert.match(r.stderr, /root-only\.txt.*Permission denied/);
    assert.equal(readFileSync(join(d, 'public.txt'), 'utf8'), 'public\n');
    assert.ok(!existsSync(join(d, 'root-only.txt')));
  });

  test('the default user that does not exist stops the start with a message that says what to do', async () => {
    const port = await findFreePort(HOST);
    const started = startRsyncService(config(port, { user: 'no-such-inosync-user' }), makeCredentials(['m1']), quietLog);
    void started.then((s) => services.push(s), () => undefined); // stopped in after() should it start
    await assert.rejects(
      started,
      /master\.yaml: rsync\.user: the user "no-such-inosync-user" does not exist on this machine; create it \(useradd --system/,
    );
    assert.deepEqual(readdirSync(root).filter((f) => f.startsWith('inosync-rsyncd-')), [], 'nothing was started');
  });
});
