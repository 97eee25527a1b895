// The websocket listener before the upgrade, on real loopback sockets: idle
// and half-sent connections are capped per address and closed after the
// deadline, and a real websocket client still gets in.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { AgentListener, MAX_UPGRADING_PER_ADDRESS } from '../../src/master/listener.js';
import { quietLog } from '../../harness/quiet-log.js';
import { waitFor } from '../../harness/wait.js';

const DEADLINE_MS = 300;

describe('AgentListener before the upgrade', () => {
  const accepted: (string | null)[] = [];
  let listener: AgentListener<{ address: string | null; ws: { terminate(): void } }>;
  const socks: Socket[] = [];

  before(async () => {
    listener = new AgentListener({
      host: '127.0.0.1',
      port: 0,
      log: quietLog,
      open: () => true,
      upgradeTimeoutMs: DEADLINE_MS,
      accept: (ws, address) => {
        accepted.push(address);
        return { address, ws };
      },
    });
    await listener.start();
  });

  after(async () => {
    for (const s of socks) s.destroy();
    await listener.close();
  });

  function idle(localAddress: string, say = ''): { closedAt: () => number | null } {
    let closedAt: number | null = null;
    const s = connect({ host: '127.0.0.1', port: listener.port!, localAddress });
    s.on('error', () => undefined);
    s.on('connect', () => say !== '' && s.write(say));
    s.on('close', () => (closedAt = Date.now()));
    s.resume();
    socks.push(s);
    return { closedAt: () => closedAt };
  }

  test('one address holds at most its cap; the oldest go first, the rest at the deadline', async () => {
    const started = Date.now();
    const n = MAX_UPGRADING_PER_ADDRESS + 8;
    const all = Array.from({ length: n }, (_, i) => idle('127.0.0.2', i % 2 === 0 ? '' : 'GET / HTTP/1.1\r\nHost: x\r\n'));
    await waitFor(() => all.slice(0, 8).every((s) => s.closedAt() !== null), 2_000, 'the oldest 8 to be evicted');
    assert.ok(all.slice(0, 8).every((s) => s.closedAt()! - started < DEADLINE_MS), 'evicted before the deadline');
    await waitFor(() => all.every((s) => s.closedAt() !== null), DEADLINE_MS + 2_000, 'every idle socket to be closed');
    assert.ok(Date.now() - started < DEADLINE_MS + 1_500);
  });

  test('a websocket client gets in while idle sockets wait', async () => {
    for (let i = 0; i < 20; i++) idle('127.0.0.3');
    const ws = new WebSocket(`ws://127.0.0.1:${listener.port!}`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await waitFor(() => accepted.length === 1, 2_000, 'the listener to accept it');
    // An upgraded connection is the handshake table's business: the deadline no longer applies.
    await new Promise((r) => setTimeout(r, DEADLINE_MS + 200));
    assert.equal(ws.readyState, WebSocket.OPEN);
    ws.terminate();
  });
});
