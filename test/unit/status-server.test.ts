import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { MasterStatus, NodeState, NodeStatus } from '../../src/protocol/status.js';
import { startStatusServer } from '../../src/master/status-server.js';
import { runStatusCommand } from '../../src/cli/status-cmd.js';

function node(name: string, state: NodeState, over: Partial<NodeStatus> = {}): NodeStatus {
  return {
    name,
    state,
    connected: state !== 'disconnected',
    connectedSince: null,
    lastSeen: null,
    address: '127.0.0.1:40000',
    version: '1.0.0',
    lastBatchSent: null,
    lastBatchAcked: null,
    lastBatchApplied: null,
    pending: 0,
    inFlight: 0,
    pacedUntil: null,
    lagSeconds: 0,
    lastSync: null,
    progress: null,
    lastError: null,
    lastRefusal: null,
    syncs: { ok: 1, failed: 0 },
    bytesTotal: 10,
    filesTotal: 1,
    ...over,
  };
}

function status(nodes: NodeStatus[]): MasterStatus {
  return {
    version: '9.9.9',
    session: '00',
    startedAt: new Date().toISOString(),
    uptimeSeconds: 5,
    batches: 3,
    paths: [{ name: 'www', watch: '/srv/www', backend: 'chokidar', paused: null, watchErrors: 0, lastEvent: null }],
    rsyncd: { running: true, restarts: 0, lastError: null, tls: false },
    refusals: [],
    nodes,
  };
}

const healthy = (): MasterStatus => status([node('a', 'idle'), node('b', 'syncing', { pending: 3, lagSeconds: 1 })]);
const degraded = (): MasterStatus =>
  status([node('a', 'idle'), node('b', 'error', { lastError: { at: '2025-01-01T00:00:00.000Z', path: 'www', exit: 12, kind: 'retry', message: 'protocol stream error' } })]);

function capture(): { write(s: string): void; text: string } {
  return {
    text: '',
    write(s: string) {
      this.text += s;
    },
  };
}

async function withServer(fn: (base: string, set: (s: () => MasterStatus) => void) => Promise<void>): Promise<void> {
  let current: () => MasterStatus = healthy;
  const warnings: string[] = [];
  const srv = await startStatusServer({ host: '127.0.0.1', port: 0, status: () => current(), log: { warn: (m) => warnings.push(m) } });
  try {
    await fn(`http://127.0.0.1:${srv.port}`, (s) => (current = s));
  } finally {
    await srv.close();
  }
}

test('serves /status, /metrics and /healthz', async () => {
  await withServer(async (base) => {
    const st = await fetch(`${base}/status`);
    assert.equal(st.status, 200);
    assert.match(st.headers.get('content-type')!, /^application\/json/);
    const body = (await st.json()) as MasterStatus;
    assert.deepEqual(body, JSON.parse(JSON.stringify({ ...healthy(), startedAt: body.startedAt })));
    for (const n of body.nodes) for (const k of ['name', 'state', 'lagSeconds', 'pending', 'lastError']) assert.ok(k in n, k);

    const m = await fetch(`${base}/metrics?x=1`);
    assert.equal(m.status, 200);
    assert.equal(m.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
    const text = await m.text();
    assert.match(text, /^# HELP inosync_node_up /m);
    assert.match(text, /^inosync_node_state\{node="b",state="syncing"\} 1$/m);
    assert.match(text, /^inosync_build_info\{version="9\.9\.9"\} 1$/m);

    const h = await fetch(`${base}/healthz`);
    assert.equal(h.status, 200);
    assert.equal((await h.text()).trim(), 'ok');

    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
  });
});

test('unknown paths are 404, other methods 405', async () => {
  await withServer(async (base) => {
    assert.equal((await fetch(`${base}/`)).status, 404);
    assert.equal((await fetch(`${base}/status/x`)).status, 404);
    const post = await fetch(`${base}/status`, { method: 'POST', body: 'x'.repeat(100_000) });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal((await fetch(`${base}/metrics`, { method: 'DELETE' })).status, 405);
    assert.equal((await fetch(`${base}/healthz`)).status, 200, 'still serving');
  });
});

test('a failing status() costs one answer, a malformed request none', async () => {
  await withServer(async (base, set) => {
    set(() => {
      throw new Error('boom');
    });
    assert.equal((await fetch(`${base}/status`)).status, 500);
    assert.equal((await fetch(`${base}/metrics`)).status, 500);
    set(healthy);

    const port = Number(new URL(base).port);
    const reply = await new Promise<string>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => sock.write('NOT HTTP AT ALL\r\n\r\n'));
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('close', () => resolve(got));
      sock.on('error', reject);
    });
    assert.match(reply, /^HTTP\/1\.1 400/);
    assert.equal((await fetch(`${base}/status`)).status, 200);
  });
});

test('status command: exit 0 when all is well, 1 when degraded', async () => {
  await withServer(async (base, set) => {
    let out = capture();
    let err = capture();
    assert.equal(await runStatusCommand({ url: base, json: false, watch: null, color: false, out, err }), 0);
    assert.match(out.text, /^a\s+idle/m);
    assert.match(out.text, /^b\s+syncing/m);
    assert.equal(err.text, '');

    set(degraded);
    out = capture();
    assert.equal(await runStatusCommand({ url: base + '/', json: false, watch: null, color: false, out, err }), 1);
    assert.match(out.text, /^b\s+error .*rsync exit 12 \[www\]: protocol stream error$/m);
  });
});

test('status command --json prints exactly what /status serves', async () => {
  await withServer(async (base, set) => {
    set(degraded);
    const out = capture();
    const code = await runStatusCommand({ url: base, json: true, watch: null, out, err: capture() });
    assert.equal(code, 1);
    const served = await (await fetch(`${base}/status`)).text();
    // startedAt is taken afresh by each call of degraded(); compare the rest.
    const strip = (t: string) => ({ ...(JSON.parse(t) as MasterStatus), startedAt: '' });
    assert.deepEqual(strip(out.text), strip(served));
    assert.ok(out.text.endsWith('}\n'));
    const j = JSON.parse(out.text) as MasterStatus;
    assert.equal(j.nodes[1]!.lastError!.exit, 12);
  });
});

test('status command: exit 2 when the master cannot be reached or answers garbage', async () => {
  const srv = await startStatusServer({ host: '127.0.0.1', port: 0, status: healthy });
  const closed = `http://127.0.0.1:${srv.port}`;
  await srv.close();
  let err = capture();
  assert.equal(await runStatusCommand({ url: closed, json: false, watch: null, out: capture(), err }), 2);
  assert.match(err.text, /cannot reach the master at .*: connection refused/);

  const junk = createServer((req, res) => {
    if (req.url === '/a/status') res.end('<html>hello</html>');
    else res.setHeader('content-type', 'application/json').end('{"nodes": "no"}');
  });
  await new Promise<void>((r) => junk.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(junk.address() as AddressInfo).port}`;
  try {
    err = capture();
    assert.equal(await runStatusCommand({ url: `${base}/a`, json: true, watch: null, out: capture(), err }), 2);
    assert.match(err.text, /not JSON/);
    err = capture();
    assert.equal(await runStatusCommand({ url: base, json: false, watch: null, out: capture(), err }), 2);
    assert.match(err.text, /not an inosync status/);
  } finally {
    junk.closeAllConnections();
    await new Promise((r) => junk.close(r));
  }

  await withServer(async (b) => {
    err = capture();
    assert.equal(await runStatusCommand({ url: `${b}/nope`, json: false, watch: null, out: capture(), err }), 2);
    assert.match(err.text, /HTTP 404/);
  });
});

test('status command --watch refreshes until SIGINT and returns the last code', async () => {
  await withServer(async (base, set) => {
    const out = capture();
    const listeners = process.listenerCount('SIGINT');
    const running = runStatusCommand({ url: base, json: false, watch: 0.05, color: false, out, err: capture() });
    const refreshes = (): number => out.text.split('\x1b[2J').length - 1;
    while (refreshes() < 2) await new Promise((r) => setTimeout(r, 10));
    set(degraded);
    const seen = refreshes();
    while (refreshes() < seen + 2) await new Promise((r) => setTimeout(r, 10));
    process.emit('SIGINT');
    assert.equal(await running, 1);
    assert.equal(process.listenerCount('SIGINT'), listeners, 'handler removed');
    assert.match(out.text, /every 0\.05s: http:\/\/127\.0\.0\.1/);
  });
});

/** A GET with a Host header of our choosing (fetch does not let one set it). */
function getWithHost(port: number, path: string, host: string | null, method = 'GET'): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, setHost: host !== null, headers: host === null ? {} : { Host: host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('every endpoint refuses a Host that is not a name of this listener (DNS rebinding), with 421 and why', async () => {
  const srv = await startStatusServer({ host: '127.0.0.1', port: 0, status: healthy, hostNames: ['origin.example'] });
  try {
    for (const path of ['/status', '/metrics', '/healthz', '/nothing-here']) {
      for (const host of ['evil.example', `evil.example:${srv.port}`, 'localhost.evil.example', '10.66.6.6']) {
        const r = await getWithHost(srv.port, path, host);
        assert.equal(r.code, 421, `${path} with Host ${host}`);
        assert.match(r.body, /does not answer to the host/);
        assert.doesNotMatch(r.body, /"nodes"|inosync_/, 'nothing of the status leaks');
      }
      const post = await getWithHost(srv.port, path, 'evil.example', 'POST');
      assert.equal(post.code, 421, `${path}: POST too`);
    }
    for (const host of [`127.0.0.1:${srv.port}`, `localhost:${srv.port}`, 'origin.example', `[::1]:${srv.port}`]) {
      const r = await getWithHost(srv.port, '/status', host);
      assert.equal(r.code, 200, `Host ${host}`);
      assert.equal((JSON.parse(r.body) as MasterStatus).version, '9.9.9');
    }
  } finally {
    await srv.close();
  }
});
