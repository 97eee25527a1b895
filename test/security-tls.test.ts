// The optional TLS layer end to end: a master serving wss:// with a
// certificate made here by openssl, an agent pinning that certificate as its
// CA (it syncs), and one pinning another CA (it never connects, and says why).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, waitFor } from './helpers/cluster.js';
import { FakeAgent } from './helpers/fake-agent.js';
import { listTree, masterPub, readText, run, signerOf } from './helpers/security.js';

async function selfSigned(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  const r = await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-keyout', key, '-out', cert, '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  assert.equal(r.code, 0, r.stderr);
  return { cert, key };
}

describe('security: TLS between agent and master', { timeout: 120_000 }, () => {
  const certs = mkdtempSync(join(tmpdir(), 'inosync-tls-'));
  let c: Cluster;
  let right: { cert: string; key: string };
  let other: { cert: string; key: string };

  before(async () => {
    right = await selfSigned(certs, 'inosync-master');
    other = await selfSigned(certs, 'someone-else');
    c = new Cluster({
      agents: 2,
      master: { tls: right },
      agent: (i) => ({ master: { url: `wss://127.0.0.1:${c.masterPort}`, key: c.masterKeyPub, ca: i === 0 ? right.cert : other.cert } }),
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
});
