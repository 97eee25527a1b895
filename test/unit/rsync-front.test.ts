// The rsync front on real loopback sockets, with a stand-in daemon that greets
// and, when told, says "@RSYNCD: OK" as rsync does after authentication.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { RsyncFront } from '../../src/master/rsyncd/front.js';
import { makeRoom, normalizeAddress } from '../../src/master/room.js';
import { waitFor } from '../../harness/wait.js';

describe('makeRoom', () => {
  const h = (address: string, evictable = true) => ({ address, evictable });
  const cases: [string, ReturnType<typeof h>[], string, { total: number; perAddress: number }, string][] = [
    ['an address without a slot is refused', [], 'a', { total: 4, perAddress: 0 }, 'refuse'],
    ['room: admitted, nobody evicted', [h('a')], 'a', { total: 4, perAddress: 2 }, 'admit'],
    ['its address is full: its oldest evictable goes', [h('b'), h('a', false), h('a')], 'a', { total: 9, perAddress: 2 }, 'evict 2'],
    ['its address is full of proven ones: refused', [h('a', false), h('a', false)], 'a', { total: 9, perAddress: 2 }, 'refuse'],
    ['all full: the oldest evictable anywhere goes', [h('b', false), h('c'), h('a')], 'a', { total: 3, perAddress: 2 }, 'evict 1'],
    ['all full of proven ones: refused', [h('b', false), h('c', false)], 'a', { total: 2, perAddress: 2 }, 'refuse'],
  ];
  for (const [what, held, address, caps, want] of cases) {
    test(what, () => {
      const r = makeRoom(held, address, caps);
      const got = !r.admit ? 'refuse' : r.evict === null ? 'admit' : `evict ${held.indexOf(r.evict)}`;
      assert.equal(got, want);
    });
  }
  test('IPv4-mapped addresses are the IPv4 address', () => {
    assert.equal(normalizeAddress('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(normalizeAddress('::1'), '::1');
    assert.equal(normalizeAddress('10.0.0.1'), '10.0.0.1');
  });
});

describe('RsyncFront (loopback sockets)', () => {
  let daemon: Server;
  let front: RsyncFront;
  let forked = 0;
  const session = {};
  const clients: Socket[] = [];

  before(async () => {
    // One "fork" per connection; a client that sends "auth" is told it passed.
    daemon = createServer((s) => {
      forked++;
      s.on('error', () => undefined);
      s.write('@RSYNCD: 32.0 sha512\n');
      s.on('data', (d: Buffer) => {
        if (d.toString().includes('auth')) s.write('@RSYNCD: OK\n');
      });
    });
    await new Promise<void>((r) => daemon.listen(0, '127.0.0.1', r));
    const addr = daemon.address();
    assert.ok(typeof addr === 'object' && addr !== null);
    front = new RsyncFront({ host: '127.0.0.1', port: 0, backend: { host: '127.0.0.1', port: addr.port }, maxConnections: 6, perSession: 3, preAuthTimeoutMs: 300 });
    await front.start();
  });

  after(async () => {
    for (const c of clients) c.destroy();
    await front.stop();
    await new Promise<void>((r) => daemon.close(() => r()));
  });

  function client(localAddress: string): { sock: Socket; said: () => string; closed: () => boolean } {
    let said = '';
    let closed = false;
    const sock = connect({ host: '127.0.0.1', port: front.port!, localAddress });
    sock.on('error', () => undefined);
    sock.on('data', (d: Buffer) => (said += d.toString()));
    sock.on('close', () => (closed = true));
    clients.push(sock);
    return { sock, said: () => said, closed: () => closed };
  }

  test('an address without an authenticated session is refused before the daemon is reached', async () => {
    const before = forked;
    const c = client('127.0.0.2');
    await waitFor(() => c.closed(), 2_000, 'the refusal');
    assert.match(c.said(), /^@ERROR: no authenticated inosync agent/);
    assert.equal(forked, before);
  });

  test('an admitted address is relayed; silent connections are closed after the deadline, authenticated ones stay', async () => {
    front.admit(session, '::ffff:127.0.0.1');
    const idle = client('127.0.0.1');
    const authed = client('127.0.0.1');
    await waitFor(() => idle.said().includes('@RSYNCD: 32.0') && authed.said().includes('@RSYNCD: 32.0'), 2_000, 'the greetings');
    authed.sock.write('www\nauth\n');
    await waitFor(() => authed.said().includes('@RSYNCD: OK'), 2_000, 'the OK');
    await waitFor(() => idle.closed(), 2_000, 'the silent one to be closed');
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(authed.closed(), false, 'an authenticated connection outlives the deadline');
    authed.sock.destroy();
  });

  test('a full address makes room by closing its oldest unauthenticated connection', async () => {
    const first = client('127.0.0.1');
    const others = [client('127.0.0.1'), client('127.0.0.1')];
    await waitFor(() => others.every((o) => o.said() !== ''), 2_000, 'the greetings');
    const last = client('127.0.0.1');
    await waitFor(() => first.closed(), 2_000, 'the oldest to be evicted');
    await waitFor(() => last.said().includes('@RSYNCD'), 2_000, 'the newest to be greeted');
    for (const c of [...others, last]) c.sock.destroy();
  });

  test('a released session admits nothing more', async () => {
    front.release(session);
    const c = client('127.0.0.1');
    await waitFor(() => c.closed(), 2_000, 'the refusal');
    assert.match(c.said(), /^@ERROR/);
  });
});
