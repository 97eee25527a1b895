// Anonymous connections against a real master: idle sockets on the rsync port
// (rsync counts `max connections` before authentication) and on the websocket
// port (before the HTTP upgrade), and a master killed with -9 leaving its
// rsync daemon behind. A real agent must keep syncing through all of it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { FakeAgent } from '../harness/fake-agent.js';
import { allProcs, isAlive, rsyncDaemonOf } from '../harness/procs.js';
import { masterPub, signerOf } from '../harness/security.js';
import { sleep, waitFor } from '../harness/wait.js';
import { UPGRADE_TIMEOUT_MS } from '../src/master/listener.js';
import { PREAUTH_TIMEOUT_MS } from '../src/master/rsyncd/front.js';

/** Sockets that connect, optionally say something, then sit idle; counts how many the server closed. */
class Idlers {
  readonly socks: Socket[] = [];
  closed = 0;
  connected = 0;
  constructor(port: number, n: number, localAddress: string, say: (i: number) => string) {
    for (let i = 0; i < n; i++) {
      const s = connect({ host: '127.0.0.1', port, localAddress });
      s.on('error', () => undefined);
      s.on('connect', () => {
        this.connected++;
        const text = say(i);
        if (text !== '') s.write(text);
      });
      s.on('close', () => this.closed++);
      // Read what comes (a refusal, a greeting), so the server's close is seen.
      s.resume();
      this.socks.push(s);
    }
  }
  get open(): number {
    return this.socks.length - this.closed;
  }
  stop(): void {
    for (const s of this.socks) s.destroy();
  }
}

/** Names a module, as rsync's client does right after the greeting, then says nothing more. */
const NAME_MODULE = () => '@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\nwww\n';

describe('security: anonymous connections', { timeout: 240_000 }, () => {
  let c: Cluster;
  let n = 0;

  before(async () => {
    c = await new Cluster({ agents: 2, paths: [{ name: 'www' }] }).setup();
    writeFileSync(join(c.origin(), 'start.txt'), 'start');
    await c.startMaster();
    c.startAgent(0);
    await c.waitConverged(0, 30_000);
  });

  after(async () => {
    await c?.cleanup();
  });

  /** How long one change takes to reach the mirror. */
  async function syncTime(): Promise<number> {
    const started = Date.now();
    writeFileSync(join(c.origin(), `change-${n++}.txt`), `change ${n}`);
    await c.waitConverged(0, 90_000);
    return Date.now() - started;
  }

  async function baseline(): Promise<number> {
    const times = [await syncTime(), await syncTime(), await syncTime()];
    return Math.max(...times);
  }

  /** rsync processes of the master's daemon: the daemon and its per-connection children. */
  function daemonProcesses(): number {
    const d = rsyncDaemonOf(c.master!.child.pid!);
    assert.ok(d, 'the master runs its rsync daemon');
    return allProcs().filter((p) => p.pgrp === d.pgrp && p.state !== 'Z').length;
  }

  test('200 idle sockets naming the module, from an address without a session, neither delay a sync nor fork rsync', async () => {
    const normal = await baseline();
    const attack = new Idlers(c.rsyncPort, 200, '127.0.0.2', NAME_MODULE);
    try {
      await waitFor(() => attack.connected + attack.closed >= 200, 10_000, 'the attack sockets to connect');
      // Time for a daemon to fork a child per socket and let each claim a slot.
      await sleep(2_000);
      const forked = daemonProcesses();
      const attacked = Math.max(await syncTime(), await syncTime());
      assert.ok(attacked <= Math.max(3 * normal, normal + 5_000), `a sync took ${attacked} ms under attack, ${normal} ms without`);
      assert.ok(forked <= 4, `${forked} rsync processes for 200 anonymous sockets`);
      // Refused at once: nothing held for rsync's 60 s.
      await waitFor(() => attack.closed === 200, 5_000, 'the attack sockets to be closed', () => `${attack.open} open ${c.logs(30)}`);
    } finally {
      attack.stop();
    }
  });

  test('200 idle sockets from the agent\'s own address (a shared NAT) are capped, time out, and do not stop its syncs', async () => {
    const normal = await baseline();
    const started = Date.now();
    const attack = new Idlers(c.rsyncPort, 200, '127.0.0.1', NAME_MODULE);
    try {
      await waitFor(() => attack.connected + attack.closed >= 200, 10_000, 'the attack sockets to connect');
      await sleep(2_000);
      const attacked = Math.max(await syncTime(), await syncTime());
      assert.ok(attacked <= Math.max(3 * normal, normal + 5_000), `a sync took ${attacked} ms under attack, ${normal} ms without`);
      assert.ok(daemonProcesses() <= 20, `${daemonProcesses()} rsync processes`);
      await waitFor(() => attack.closed === 200, PREAUTH_TIMEOUT_MS + 5_000, 'every idle socket to be closed', () => `${attack.open} open`);
      assert.ok(Date.now() - started <= PREAUTH_TIMEOUT_MS + 15_000);
    } finally {
      attack.stop();
    }
  });

  test('400 idle or half-sent requests on the websocket port are closed within the bound, and an agent gets in meanwhile', async () => {
    const started = Date.now();
    const port = c.masterPort;
    const idle = new Idlers(port, 200, '127.0.0.3', () => '');
    const half = new Idlers(port, 200, '127.0.0.4', (i) => `GET / HTTP/1.1\r\nHost: x${i}\r\nUpgrade: websocket\r\n`);
    try {
      await waitFor(() => idle.connected + idle.closed + half.connected + half.closed >= 400, 10_000, 'the flood to connect');
      const a = await FakeAgent.connect({ url: `ws://127.0.0.1:${port}`, name: 'mirror1', signer: signerOf(c, 1), masterKey: masterPub(c) });
      await a.handshake();
      assert.ok(a.creds, 'the agent authenticated during the flood');
      a.close();
      await waitFor(() => idle.closed + half.closed === 400, UPGRADE_TIMEOUT_MS + 5_000, 'the flood to be closed', () => `${idle.open} idle and ${half.open} half-sent open`);
      assert.ok(Date.now() - started <= UPGRADE_TIMEOUT_MS + 15_000, `closed after ${Date.now() - started} ms`);
      await syncTime();
    } finally {
      idle.stop();
      half.stop();
    }
  });

  test('kill -9 of the master: its rsync daemon is gone within 5 s, and the next master syncs', async () => {
    const daemon = rsyncDaemonOf(c.master!.child.pid!);
    assert.ok(daemon);
    const group = daemon.pgrp;
    await c.stopMaster('SIGKILL');
    const killed = Date.now();
    await waitFor(() => !isAlive(daemon.pid) && !allProcs().some((p) => p.pgrp === group && p.state !== 'Z'), 5_000, 'the daemon to die with its master');
    assert.ok(Date.now() - killed <= 5_000);
    await sleep(100);
    await c.startMaster();
    await syncTime();
  });
});
