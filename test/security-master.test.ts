// Attacks on a real master process: intruders at the handshake, forged agent
// messages, the rsync daemon, connection floods, careless key files. The
// intruder is harness/fake-agent.ts; the legitimate mirror is a real
// agent process that must keep syncing through all of it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { Cluster } from '../harness/cluster.js';
import { FakeAgent } from '../harness/fake-agent.js';
import {
  allCommandLines, childrenOf, CLI, cmdlineOf, keyFile, listTree, masterPub, randomSigner, readText, rsync, run, secretLine, signerOf,
} from '../harness/security.js';
import { sleep, waitFor } from '../harness/wait.js';
import { generateKeyFile, KeyFileError, loadSecretKey } from '../src/common/keyfile.js';
import { encode } from '../src/protocol/codec.js';
import { seal } from '../src/protocol/envelope.js';
import { CLOSE } from '../src/protocol/handshake.js';
import { HANDSHAKE_TIMEOUT_MS } from '../src/protocol/limits.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';

describe('security: the master', { timeout: 180_000 }, () => {
  let c: Cluster;
  const url = () => `ws://127.0.0.1:${c.masterPort}`;
  /** rsync passwords seen during the tests: none may appear in a log or on a command line */
  const passwords = new Set<string>();

  before(async () => {
    c = await new Cluster({ agents: 2, paths: [{ name: 'www', exclude: ['secret/', '*.key'] }] }).setup();
    await fs.writeFile(join(c.origin(), 'public.txt'), 'for everyone');
    await fs.mkdir(join(c.origin(), 'secret'));
    await fs.writeFile(join(c.origin(), 'secret', 'plans.txt'), 'excluded');
    await fs.writeFile(join(c.origin(), 'tls.key'), 'excluded too');
    await c.startMaster();
    c.startAgent(0);
    await c.waitIdle(30_000, [0]);
  });

  after(async () => {
    await c?.cleanup();
  });

  const status = async () => {
    const s = await c.fetchStatus();
    assert.ok(s, 'master status');
    return s;
  };
  const node = async (name: string) => (await status()).nodes.find((n) => n.name === name)!;

  test('an unknown node name is refused before it learns anything', async () => {
    const before = (await status()).refusalsTotal ?? 0;
    const a = await FakeAgent.connect({ url: url(), name: 'intruder', signer: randomSigner() });
    a.hello();
    const closed = await a.waitClosed();
    assert.equal(closed.code, CLOSE.unauthorized);
    assert.equal(a.frames.length, 0, 'no challenge, no path names, no batch');
    const s = await status();
    assert.equal(s.refusalsTotal, before + 1);
    assert.match(s.refusals.at(-1)!.reason, /unknown node "intruder"/);
    assert.equal(s.refusals.at(-1)!.node, null);
    assert.match(readText(c.master!.log), /refused unknown node .*name=intruder/);
  });

  test('a known name with the wrong key is refused; it only ever sees the challenge', async () => {
    const a = await FakeAgent.connect({ url: url(), name: 'mirror1', signer: randomSigner(), masterKey: masterPub(c) });
    const ch = await a.answerChallenge();
    const closed = await a.waitClosed();
    assert.equal(closed.code, CLOSE.unauthorized);
    assert.equal(a.frames.length, 1, 'nothing after the challenge');
    // The challenge carries nonces and the run id: nothing about paths or files.
    assert.deepEqual(Object.keys(ch).sort(), ['echo', 'name', 'nonce', 'session', 't', 'v']);
    const n = await node('mirror1');
    assert.match(n.lastRefusal?.reason ?? '', /key does not match/);
    assert.equal(n.connected, false);
    assert.match(readText(c.master!.log), /refused node: signature does not match its configured key .*node=mirror1/);
  });

  test('a real agent with a key the master does not know says so in its log', async () => {
    const wrongKey = join(c.dir, 'keys', 'wrong.key');
    generateKeyFile(wrongKey);
    const cfg = JSON.parse(readFileSync(c.agentConfig(1), 'utf8')) as Record<string, unknown>;
    const file = join(c.dir, 'agent1-wrongkey.yaml');
    writeFileSync(file, JSON.stringify({ ...cfg, key: wrongKey }));
    const p = c.startAgent(1, ['-c', file]);
    try {
      await waitFor(() => /the master refused this agent/.test(readText(p.log)), 15_000, 'the agent to log the refusal');
      assert.deepEqual(listTree(c.mirror(1)), [], 'nothing reached the mirror');
      assert.equal((await node('mirror1')).connected, false);
    } finally {
      await c.stopAgent(1, 'SIGKILL');
    }
  });

  test('an agent refuses a master that does not hold the key in its config', async () => {
    const cfg = JSON.parse(readFileSync(c.agentConfig(1), 'utf8')) as { master: Record<string, unknown> };
    const file = join(c.dir, 'agent1-wrongmaster.yaml');
    writeFileSync(file, JSON.stringify({ ...cfg, master: { ...cfg.master, key: Buffer.from(randomSigner().publicKey).toString('base64') } }));
    const p = c.startAgent(1, ['-c', file]);
    try {
      await waitFor(() => /did not prove it holds the key in master.key/.test(readText(p.log)), 15_000, 'the agent to refuse the master');
      assert.deepEqual(listTree(c.mirror(1)), [], 'nothing was pulled from an unproven master');
      assert.equal((await node('mirror1')).connected, false);
    } finally {
      await c.stopAgent(1, 'SIGKILL');
    }
  });

  test('agent messages must be signed by the node, bound to the connection and counted', async () => {
    const opts = { url: url(), name: 'mirror1', signer: signerOf(c, 1), masterKey: masterPub(c) };
    const a = await FakeAgent.connect(opts);
    await a.handshake();
    assert.ok(a.creds, 'the boxed credentials open with the ephemeral key');
    passwords.add(a.creds.password);
    // A signed reject is how an agent reports a forged frame: it shows in the status.
    const frame = a.sendSigned({ t: 'reject', seq: null, reason: 'test: a forged batch' });
    await waitFor(async () => (await node('mirror1')).lastError?.kind === 'rejected', 10_000, 'the reject in the status');
    assert.equal((await node('mirror1')).lastError?.message, 'test: a forged batch');
    // The same frame again: its counter did not increase.
    a.send(frame);
    assert.equal((await a.waitClosed()).code, CLOSE.protocol);
    await waitFor(() => /a replayed frame \(counter did not increase\)/.test(readText(c.master!.log)), 5_000, 'the replay in the log');

    // A frame from that connection replayed into a new one.
    const b = await FakeAgent.connect(opts);
    await b.handshake();
    b.send(seal(signerOf(c, 1), 'agent->master', encode({ t: 'ack', conn: a.conn, n: 50, seq: 1 })));
    assert.equal((await b.waitClosed()).code, CLOSE.protocol);
    await waitFor(() => /a frame bound to another connection/.test(readText(c.master!.log)), 5_000, 'the wrong binding in the log');

    // Signed by another key, or a master frame reflected back with the other direction label.
    for (const forge of [
      (x: FakeAgent) => x.sendSigned({ t: 'ack', seq: 1 }, randomSigner()),
      (x: FakeAgent) => x.send(seal(signerOf(c, 1), 'master->agent', encode({ t: 'ack', conn: x.conn, n: 9, seq: 1 }))),
    ]) {
      const x = await FakeAgent.connect(opts);
      await x.handshake();
      forge(x);
      assert.equal((await x.waitClosed()).code, CLOSE.protocol);
    }
    assert.match(readText(c.master!.log), /a frame with a bad signature on an authenticated connection/);
    // The real mirror was never disturbed.
    assert.equal((await node('mirror0')).connected, true);
  });

  test('an unauthenticated connection is closed after the handshake timeout', async () => {
    const started = Date.now();
    const silent = await FakeAgent.connect({ url: url(), name: 'nobody', signer: randomSigner() });
    const helloOnly = await FakeAgent.connect({ url: url(), name: 'mirror1', signer: signerOf(c, 1) });
    helloOnly.hello();
    const [a, b] = await Promise.all([silent.waitClosed(HANDSHAKE_TIMEOUT_MS + 5_000), helloOnly.waitClosed(HANDSHAKE_TIMEOUT_MS + 5_000)]);
    const took = Date.now() - started;
    assert.equal(a.code, CLOSE.timeout);
    assert.equal(b.code, CLOSE.timeout);
    assert.ok(took >= HANDSHAKE_TIMEOUT_MS - 100 && took < HANDSHAKE_TIMEOUT_MS + 15_000, `closed after ${took} ms`);
    assert.equal(silent.frames.length, 0);
    assert.equal(helloOnly.frames.length, 1, 'only the challenge');
  });

  test('the rsync daemon lists nothing and serves nothing to anonymous clients', async () => {
    const base = `rsync://127.0.0.1:${c.rsyncPort}/`;
    const list = await rsync(['--list-only', base], null);
    assert.equal(list.stdout.trim(), '', `module list: ${list.stdout}`);
    const dst = join(c.dir, 'anon');
    mkdirSync(dst);
    for (const [src, password] of [
      [`${base}www/`, ''],
      [`${base}www/public.txt`, ''],
      [`rsync://mirror0@127.0.0.1:${c.rsyncPort}/www/`, 'guess'],
      [`rsync://inosync-mirror0@127.0.0.1:${c.rsyncPort}/www/`, 'guess'],
    ] as const) {
      const r = await rsync(['-r', src, dst + '/'], password);
      assert.notEqual(r.code, 0, `${src} must fail: ${r.stdout}`);
      assert.match(r.stderr, /auth failed|@ERROR/);
    }
    assert.deepEqual(listTree(dst), []);
  });

  test('valid credentials pull the module but never an excluded path', async () => {
    const a = await FakeAgent.connect({ url: url(), name: 'mirror1', signer: signerOf(c, 1), masterKey: masterPub(c) });
    await a.handshake();
    const { user, password } = a.creds!;
    passwords.add(password);
    const base = `rsync://${user}@127.0.0.1:${c.rsyncPort}/www/`;
    const dst = join(c.dir, 'pulled');
    mkdirSync(dst);
    // Everything the client may ask for: the whole module, including what the excludes name.
    const r = await rsync(['-r', '--include=*', '--include=secret/***', base, dst + '/'], password);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(listTree(dst), ['public.txt']);
    for (const path of ['secret/plans.txt', 'secret/', 'tls.key']) {
      const one = await rsync(['-r', base + path, join(c.dir, 'one') + '/'], password);
      assert.deepEqual(listTree(join(c.dir, 'one')), [], `${path}: ${one.stdout}${one.stderr}`);
    }
    a.close();
  });

  test('credentials are never on a command line, in a log or in a readable file', async () => {
    const masterPid = c.master!.child.pid!;
    const daemon = childrenOf(masterPid).map(cmdlineOf).find((argv) => argv.includes('--daemon'));
    assert.ok(daemon, 'the rsync daemon runs as a child of the master');
    const conf = daemon.find((a) => a.startsWith('--config='))!.slice('--config='.length);
    const dir = join(conf, '..');
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'runtime directory');
    assert.equal(statSync(join(dir, 'secrets')).mode & 0o777, 0o600, 'secrets file');
    assert.equal(statSync(conf).mode & 0o077, 0);
    // The real agent pulls while we look at every command line on the machine.
    const pulls = (async () => {
      for (let i = 0; i < 5; i++) {
        await fs.writeFile(join(c.origin(), `cmdline-${i}.txt`), `pull ${i}`);
        await c.waitConverged(0);
      }
    })();
    const secrets = readFileSync(join(dir, 'secrets'), 'utf8');
    const all = secrets.split('\n').filter(Boolean).map((l) => l.slice(l.indexOf(':') + 1));
    for (const p of passwords) assert.ok(all.includes(p), 'the passwords seen are this run\'s');
    let scans = 0;
    while (scans < 50) {
      const lines = allCommandLines().join('\n');
      for (const p of all) assert.ok(!lines.includes(p), 'a password on a command line');
      scans++;
      if (await Promise.race([pulls.then(() => true), sleep(20).then(() => false)])) break;
    }
    await pulls;
    assert.ok(!readFileSync(conf, 'utf8').includes(all[0]!));
    for (const log of [c.master!.log, c.agents[0]!.log]) {
      const text = readText(log);
      for (const p of all) assert.ok(!text.includes(p), `a password in ${log}`);
    }
  });

  test("an agent's credentials stop working when the master restarts", async () => {
    const a = await FakeAgent.connect({ url: url(), name: 'mirror1', signer: signerOf(c, 1), masterKey: masterPub(c) });
    await a.handshake();
    const old = a.creds!;
    passwords.add(old.password);
    a.close();
    // The daemon serves the module root only: one file is pulled with a filter, as agents do.
    const pull = (creds: { user: string; password: string }, dst: string) =>
      rsync(['-r', '--include=/public.txt', '--exclude=*', `rsync://${creds.user}@127.0.0.1:${c.rsyncPort}/www/`, `${dst}/`], creds.password);
    assert.equal((await pull(old, join(c.dir, 'before-restart'))).code, 0);
    await c.stopMaster();
    await c.startMaster();
    // From an address with an authenticated agent (the real mirror0's, once it
    // is back), so that what refuses the stale credentials is rsync's own
    // authentication, not the front (security-connections.test.ts covers that).
    await waitFor(async () => (await c.fetchStatus())?.nodes.find((n) => n.name === c.agentName(0))?.connected === true, 30_000, 'mirror0 to reconnect');
    const stale = await pull(old, join(c.dir, 'stale'));
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /auth failed/);
    const b = await FakeAgent.connect({ url: url(), name: 'mirror1', signer: signerOf(c, 1), masterKey: masterPub(c) });
    await b.handshake();
    passwords.add(b.creds!.password);
    assert.notEqual(b.creds!.password, old.password);
    assert.notEqual(b.creds!.user, old.user);
    assert.equal((await pull(b.creds!, join(c.dir, 'after-restart'))).code, 0);
    b.close();
    // The real agent got its new credentials the same way and keeps syncing.
    await fs.writeFile(join(c.origin(), 'after-restart.txt'), 'new run');
    await c.waitConverged(0);
  });

  test('a flood of connections and garbage does not keep a legitimate agent from syncing', async () => {
    const flood = new Flood(url(), c.masterPort);
    try {
      flood.start(400);
      // Saturation shows as churn: a flood socket reopens only after the master
      // closed it (evicted from a full handshake table or timed out). How many
      // are open at one instant depends on the machine's speed, so ask for a
      // steady crowd rather than a precise count.
      await waitFor(() => flood.opened >= 800 && flood.open >= 200, 30_000, 'the flood to build up', () => flood.describe());
      // The connected agent keeps syncing.
      await fs.writeFile(join(c.origin(), 'during-flood.txt'), 'flooded');
      await c.waitConverged(0, 20_000);
      // An agent that (re)connects in the middle of it gets in too, at once:
      // more than the master's 256 unauthenticated slots are taken all along.
      await c.stopAgent(0);
      await waitFor(async () => !(await node('mirror0')).connected, 10_000, 'the master to see the agent go');
      const log = readText(join(c.dir, 'agent0.log')).length;
      const started = Date.now();
      c.startAgent(0, []);
      await waitFor(async () => (await node('mirror0')).connected, 30_000, 'the agent to get back in', () => flood.describe());
      const attempts = readText(join(c.dir, 'agent0.log')).slice(log).split('connected; authenticating').length - 1;
      assert.ok(attempts <= 2, `the agent needed ${attempts} attempts (${Date.now() - started} ms) to get through the flood`);
      await fs.writeFile(join(c.origin(), 'reconnected.txt'), 'still flooded');
      await c.waitConverged(0, 30_000);
      assert.ok(flood.opened >= 400, flood.describe());
    } finally {
      await flood.stop();
    }
    const s = await status();
    assert.equal(s.nodes.find((n) => n.name === 'mirror0')!.connected, true);
    assert.ok(c.master!.child.exitCode === null, 'the master is still up');
  });

  test('keys and passwords never reach a log', () => {
    const logs = [c.master!.log, ...c.agents.filter((p) => p !== null).map((p) => p!.log), join(c.dir, 'agent1.log')].map(readText).join('\n');
    for (const who of ['master', 0, 1] as const) assert.ok(!logs.includes(secretLine(c, who)), `the ${who} key in a log`);
    for (const p of passwords) assert.ok(!logs.includes(p), 'an rsync password in a log');
    // one per master run, whatever the number of handshakes
    assert.ok(passwords.size >= 2);
  });

  test('loading a secret key refuses group- or world-readable files and says how to fix it', () => {
    for (const mode of [0o640, 0o604, 0o660, 0o666]) {
      const f = join(c.dir, 'keys', `mode-${mode.toString(8)}.key`);
      copyFileSync(keyFile(c, 'master'), f);
      chmodSync(f, mode);
      assert.throws(() => loadSecretKey(f), (err: Error) => err instanceof KeyFileError && err.message.includes(`chmod 600 ${f}`) && !err.message.includes(secretLine(c, 'master')));
      chmodSync(f, 0o600);
      assert.deepEqual(loadSecretKey(f).publicKey, masterPub(c));
    }
  });

  test('master and agent refuse to start with a key file others can read', async () => {
    for (const [cli, config, key] of [
      ['master.js', c.masterConfig, keyFile(c, 'master')],
      ['agent.js', c.agentConfig(1), keyFile(c, 1)],
    ] as const) {
      const loose = join(c.dir, 'keys', `loose-${cli}.key`);
      copyFileSync(key, loose);
      chmodSync(loose, 0o644);
      const cfg = JSON.parse(readFileSync(config, 'utf8')) as Record<string, unknown>;
      const file = join(c.dir, `loose-${cli}.yaml`);
      writeFileSync(file, JSON.stringify({ ...cfg, key: loose }));
      const r = await run(process.execPath, [join(CLI, cli), '-c', file], { timeoutMs: 20_000 });
      assert.notEqual(r.code, 0, `${cli} started with a readable key`);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`${loose.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*(group or others).*chmod 600 `), r.stderr);
      assert.ok(!r.stderr.includes(readFileSync(loose, 'utf8').split('\n')[1]!), 'the key itself is not printed');
    }
  });
});

/**
 * Keeps `target` hostile connections open from 127.0.0.2-127.0.0.31 and some
 * from 127.0.0.1 (an agent behind the same NAT as the attacker): websockets
 * that say nothing, that send a hello and stall, that send garbage or text,
 * and raw TCP sockets that never finish the HTTP upgrade or speak nonsense.
 * A closed one is replaced after a pause, so the pressure stays on.
 */
class Flood {
  open = 0;
  opened = 0;
  private stopped = false;
  private readonly socks = new Set<WebSocket | Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly url: string,
    private readonly port: number,
  ) {}

  start(target: number): void {
    // Spread over a second, so that handshake timeouts do not free every slot at once.
    for (let i = 0; i < target; i++) {
      const t = setTimeout(() => {
        this.timers.delete(t);
        this.spawn(i);
      }, Math.floor((i * 1000) / target));
      this.timers.add(t);
    }
  }

  private again(i: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.spawn(i);
    }, 1_000 + (i % 7) * 100);
    this.timers.add(t);
  }

  private spawn(i: number): void {
    if (this.stopped) return;
    const localAddress = i % 15 === 0 ? '127.0.0.1' : `127.0.0.${2 + (i % 30)}`;
    this.opened++;
    const kind = i % 20;
    if (kind >= 18) {
      const s = connect({ host: '127.0.0.1', port: this.port, localAddress });
      this.socks.add(s);
      this.open++;
      s.on('error', () => undefined);
      s.on('connect', () => {
        if (kind === 18) s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n');
        else s.write(randomBytes(512));
      });
      s.on('close', () => {
        this.open--;
        this.socks.delete(s);
        this.again(i);
      });
      return;
    }
    const ws = new WebSocket(this.url, { localAddress, perMessageDeflate: false, handshakeTimeout: 10_000 });
    this.socks.add(ws);
    this.open++;
    ws.on('error', () => undefined);
    ws.on('open', () => {
      // Most say nothing or stall after a hello: they are what fills the handshake slots.
      if (kind >= 14 && kind <= 15) ws.send(encode({ t: 'hello', v: PROTOCOL_VERSION, name: 'mirror1', nonce: randomBytes(32), version: 'flood' }));
      if (kind === 16) ws.send(randomBytes(1 + (i % 900)));
      if (kind === 17) ws.send(i % 2 === 0 ? 'not a binary frame' : randomBytes(70));
    });
    ws.on('close', () => {
      this.open--;
      this.socks.delete(ws);
      this.again(i);
    });
  }

  describe(): string {
    return `flood: ${this.open} open, ${this.opened} opened`;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.socks) (s instanceof WebSocket ? s.terminate() : s.destroy());
    await sleep(100);
  }
}
