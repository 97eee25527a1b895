// The optional TLS layer end to end: a master serving wss:// with a
// certificate made here by openssl, an agent pinning that certificate as its
// CA (it syncs), and one pinning another CA (it never connects, and says why).
// The rsync port is behind the same certificate: names and contents are
// looked for, and not found, in every byte that crosses it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { sleep, waitFor } from '../harness/wait.js';
import { FakeAgent } from '../harness/fake-agent.js';
import { listTree, masterPub, readText, rsync, signerOf } from '../harness/security.js';
import { descendants, isAlive, rsyncDaemonOf, waitGone } from '../harness/procs.js';
import { TlsTunnel } from '../src/agent/tls-tunnel.js';
import { SocketPairs } from '../src/common/sockets.js';
import { selfSignedCert, testCa } from '../harness/certs.js';

/** A TCP relay to `port` that keeps every byte it carries, both ways. */
async function recordingRelay(port: number): Promise<{ port: number; bytes: () => Buffer; close: () => Promise<void> }> {
  const seen: Buffer[] = [];
  const pairs = new SocketPairs();
  const server: Server = createServer((a) => {
    const b = connect({ host: '127.0.0.1', port });
    a.on('data', (d: Buffer) => seen.push(d));
    b.on('data', (d: Buffer) => seen.push(d));
    pairs.join(a, b);
    a.pipe(b);
    b.pipe(a);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    bytes: () => Buffer.concat(seen),
    close: () => {
      pairs.destroyAll();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** The serial number of the certificate a TLS port presents, verified against `ca`. */
function servedSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: readFileSync(ca) }, () => {
      resolve(s.getPeerCertificate().serialNumber);
      s.destroy();
    });
    s.once('error', reject);
  });
}

describe('security: TLS between agent and master', { timeout: 120_000 }, () => {
  const certs = mkdtempSync(join(tmpdir(), 'inosync-tls-'));
  let c: Cluster;
  let right: { cert: string; key: string };
  let other: { cert: string; key: string };

  before(async () => {
    right = selfSignedCert(certs, 'inosync-master');
    other = selfSignedCert(certs, 'someone-else');
    c = new Cluster({
      agents: 2,
      master: { tls: right },
      agent: (i) => ({
        master: { url: `wss://127.0.0.1:${c.masterPort}`, key: c.masterKeyPub, ca: i === 0 ? right.cert : other.cert },
        // Slow enough that a big file is still on its way when the agent is stopped.
        rsync: { bwlimit: 5_000 },
      }),
    });
    await c.setup();
    writeFileSync(join(c.origin(), 'before.txt'), 'over TLS');
    await c.startMaster();
    c.startAgent(0);
    c.startAgent(1);
  });

  after(async () => {
    await c?.cleanup();
    rmSync(certs, { recursive: true, force: true });
  });

  test('an agent that pins the master certificate connects over wss:// and syncs', async () => {
    await c.waitIdle(30_000, [0]);
    await c.waitConverged(0);
    writeFileSync(join(c.origin(), 'after.txt'), 'still over TLS');
    await c.waitConverged(0);
    assert.match(readText(c.agents[0]!.log), /connected to master .*url=wss:\/\/127\.0\.0\.1/);
  });

  test('an agent that pins another CA never connects, and its log says why', async () => {
    await waitFor(() => /cannot verify the master's TLS certificate/.test(readText(c.agents[1]!.log)), 15_000, 'the TLS failure in the log');
    assert.match(readText(c.agents[1]!.log), /self-signed certificate|unable to verify/i);
    assert.doesNotMatch(readText(c.agents[1]!.log), /connected to master/);
    assert.deepEqual(listTree(c.mirror(1)), []);
    const n = (await c.fetchStatus())!.nodes.find((x) => x.name === 'mirror1')!;
    assert.equal(n.state, 'never-connected');
  });

  test('a client without the pinned CA, or speaking plain ws://, gets nothing', async () => {
    const noCa = new FakeAgent({ url: `wss://127.0.0.1:${c.masterPort}`, name: 'mirror1', signer: signerOf(c, 1) });
    await assert.rejects(noCa.opened, /self-signed certificate|unable to verify/i);
    const plain = new FakeAgent({ url: `ws://127.0.0.1:${c.masterPort}`, name: 'mirror1', signer: signerOf(c, 1) });
    await assert.rejects(plain.opened);
    // With the right CA the real key still completes the handshake.
    const ok = await FakeAgent.connect({ url: `wss://127.0.0.1:${c.masterPort}`, name: 'mirror1', signer: signerOf(c, 1), masterKey: masterPub(c), ca: readFileSync(right.cert) });
    await ok.handshake();
    assert.ok(ok.creds);
    ok.close();
  });

  test('the rsync port speaks only TLS, and the daemon behind it listens on loopback only', async () => {
    assert.match(readText(c.master!.log), /rsync daemon behind TLS/);
    assert.equal((await c.fetchStatus())?.rsyncd.tls, true, 'status says so');
    const daemon = rsyncDaemonOf(c.master!.child.pid!);
    assert.ok(daemon, 'the master runs its rsync daemon');
    assert.ok(daemon.argv.includes('--address=127.0.0.1'), daemon.argv.join(' '));
    assert.ok(!daemon.argv.includes(`--port=${c.rsyncPort}`), 'the public port is the TLS front\'s');
    // A plain rsync daemon greets first ("@RSYNCD: 31.0"); a TLS server waits for a ClientHello.
    const greeting = await new Promise<string>((resolve) => {
      const sock = connect({ host: '127.0.0.1', port: c.rsyncPort });
      let got = '';
      sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
      sock.on('error', () => undefined);
      setTimeout(() => {
        sock.destroy();
        resolve(got);
      }, 1_000);
    });
    assert.equal(greeting, '', 'the port spoke first, in the clear');
    const plain = await rsync([`rsync://127.0.0.1:${c.rsyncPort}/`], null);
    assert.notEqual(plain.code, 0, 'plain rsync got an answer');
    assert.doesNotMatch(plain.stdout, /www/);
  });

  test('names and contents pulled over the rsync port are not in the bytes on the wire', async () => {
    const name = 'wire-secret-name-5d41402a.txt';
    const content = 'wire-secret-content-7d793037a0760186574b0282f2f435e7';
    writeFileSync(join(c.origin(), name), content);
    await c.waitConverged(0);
    assert.equal(readFileSync(join(c.mirror(0), name), 'utf8'), content, 'the agent pulled it over TLS');

    // The same pull by hand, through a relay that keeps what crosses it.
    const agent = await FakeAgent.connect({ url: `wss://127.0.0.1:${c.masterPort}`, name: 'mirror1', signer: signerOf(c, 1), masterKey: masterPub(c), ca: readFileSync(right.cert) });
    await agent.handshake();
    assert.equal(agent.welcome!.rsyncTls, true, 'the welcome says the rsync port speaks TLS');
    const creds = agent.creds!;
    agent.close();
    const relay = await recordingRelay(c.rsyncPort);
    const dst = mkdtempSync(join(tmpdir(), 'inosync-tls-pull-'));
    // The agent's own tunnel, pointed at the relay; then one pinned to another CA.
    const tlsErrors: string[] = [];
    const tunnel = (ca: string): TlsTunnel => {
      const t = new TlsTunnel({ ca: readFileSync(ca), onError: (err) => tlsErrors.push(String((err as NodeJS.ErrnoException).code ?? err.message)) });
      t.target = { host: '127.0.0.1', port: relay.port };
      return t;
    };
    const good = tunnel(right.cert);
    const bad = tunnel(other.cert);
    try {
      const pull = async (t: TlsTunnel, to: string) => rsync(['-a', `rsync://${creds.user}@127.0.0.1:${await t.listen()}/www/`, to], creds.password);
      const r = await pull(good, `${dst}/`);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(tlsErrors, []);
      const again = await rsync(['-a', `rsync://${creds.user}@127.0.0.1:${good.port}/www/`, `${dst}/`], creds.password);
      assert.equal(again.code, 0, again.stderr);
      assert.equal(good.resumed, 1, 'the second pull resumed the first one\'s TLS session');
      assert.equal(readFileSync(join(dst, name), 'utf8'), content, 'the pull went through the relay');
      const wire = relay.bytes();
      assert.ok(wire.length > 1000, `${wire.length} bytes crossed`);
      for (const secret of [name, content, creds.user, '@RSYNCD']) {
        assert.equal(wire.indexOf(secret), -1, `"${secret}" crossed in the clear`);
      }
      // Pinned to another CA, the same pull is refused before rsync says a word.
      const wrong = await pull(bad, `${dst}/other/`);
      assert.notEqual(wrong.code, 0);
      assert.deepEqual(tlsErrors, ['DEPTH_ZERO_SELF_SIGNED_CERT']);
    } finally {
      await good.close();
      await bad.close();
      await relay.close();
      rmSync(dst, { recursive: true, force: true });
    }
  });

  test('an agent stopped mid-transfer leaves no rsync behind', async () => {
    await c.waitIdle(30_000, [0]);
    writeFileSync(join(c.origin(), 'big.bin'), randomBytes(20 * 2 ** 20));
    const pid = c.agents[0]!.child.pid!;
    let tree: number[] = [];
    await waitFor(() => {
      const below = descendants(pid);
      tree = below.map((p) => p.pid);
      return below.some((p) => /(^|\/)rsync$/.test(p.argv[0] ?? ''));
    }, 15_000, 'the pull to run');
    await c.stopAgent(0, 'SIGTERM');
    await waitGone(tree, 5_000);
    c.startAgent(0);
    await c.waitConverged(0, 60_000);
  });

  test('idle TLS sockets, from elsewhere or from the agent\'s own address, do not delay its syncs', async () => {
    let n = 0;
    const syncTime = async (): Promise<number> => {
      const started = Date.now();
      writeFileSync(join(c.origin(), `tls-flood-${n++}.txt`), `change ${n}`);
      await c.waitConverged(0, 90_000);
      return Date.now() - started;
    };
    const normal = Math.max(await syncTime(), await syncTime());
    const socks: import('node:net').Socket[] = [];
    let secured = 0;
    // One TLS handshake per socket, then silence; most from an address with no session, some from the agent's.
    for (let i = 0; i < 200; i++) {
      const raw = connect({ host: '127.0.0.1', port: c.rsyncPort, localAddress: i % 4 === 0 ? '127.0.0.1' : '127.0.0.2' });
      raw.on('error', () => undefined);
      const s = tlsConnect({ socket: raw, rejectUnauthorized: false });
      s.on('error', () => undefined);
      s.on('secureConnect', () => {
        secured++;
        s.write('@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\nwww\n');
      });
      s.resume();
      socks.push(s);
    }
    try {
      await sleep(2_000);
      const attacked = Math.max(await syncTime(), await syncTime());
      assert.ok(attacked <= Math.max(3 * normal, normal + 5_000), `a sync took ${attacked} ms under attack, ${normal} ms without`);
      assert.ok(secured <= 60, `${secured} TLS handshakes completed: only the agent's address gets that far`);
    } finally {
      for (const s of socks) s.destroy();
    }
  });

  test('kill -9 of the master: its daemon dies with it, and the next master syncs over TLS', async () => {
    const daemon = rsyncDaemonOf(c.master!.child.pid!);
    assert.ok(daemon);
    await c.stopMaster('SIGKILL');
    await waitFor(() => !isAlive(daemon.pid), 5_000, 'the daemon to die with its master (parent-death signal)');
    await c.startMaster();
    writeFileSync(join(c.origin(), 'after-restart.txt'), 'after a crash, still over TLS');
    await c.waitConverged(0, 60_000);
  });
});

describe('security: a renewed TLS certificate, loaded on SIGHUP', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'inosync-renew-'));
  const cert = join(dir, 'master.crt');
  const key = join(dir, 'master.key');
  let c: Cluster;
  let pki: ReturnType<typeof testCa>;

  before(async () => {
    pki = testCa(dir);
    pki.issue(cert, key);
    c = new Cluster({
      agents: 1,
      master: { tls: { cert, key } },
      agent: () => ({ master: { url: `wss://127.0.0.1:${c.masterPort}`, key: c.masterKeyPub, ca: pki.ca } }),
    });
    await c.setup();
    await c.start();
  });

  after(async () => {
    await c?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  test('both ports present the new certificate; the agent keeps syncing; a broken one is refused', async () => {
    const old = await servedSerial(c.masterPort, pki.ca);
    assert.equal(await servedSerial(c.rsyncPort, pki.ca), old);
    pki.issue(cert, key);
    await c.signalMaster('SIGHUP', /reload: TLS certificate loaded/);
    const renewed = await servedSerial(c.masterPort, pki.ca);
    assert.notEqual(renewed, old, 'the websocket port still presents the old certificate');
    assert.equal(await servedSerial(c.rsyncPort, pki.ca), renewed, 'the rsync port presents the new one too');
    writeFileSync(join(c.origin(), 'after-renewal.txt'), 'pulled through the renewed certificate');
    await c.waitConverged(0);

    // A half-written renewal (the key of another certificate) changes nothing.
    const stray = join(dir, 'stray.key');
    pki.issue(join(dir, 'stray.crt'), stray);
    writeFileSync(key, readFileSync(stray));
    await c.signalMaster('SIGHUP', /reload: the TLS certificate or key does not load; still serving the previous one/);
    assert.equal(await servedSerial(c.masterPort, pki.ca), renewed);
    assert.equal(await servedSerial(c.rsyncPort, pki.ca), renewed);
  });
});
