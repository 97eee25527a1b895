// Issue 10, suspected: an agent that reaches its master over wss:// used to
// pull files over plain rsync when the master set rsync.tls: false, in
// silence. Now it refuses, says why, and syncs nothing; with
// master.allowPlainRsync: true in its config it follows the master as before.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { selfSignedCert } from '../harness/certs.js';
import { listTree, readText } from '../harness/security.js';
import { sleep, waitFor } from '../harness/wait.js';

describe('security: no silent downgrade to plain rsync', { timeout: 120_000 }, () => {
  const certs = mkdtempSync(join(tmpdir(), 'inosync-downgrade-'));
  let c: Cluster;

  before(async () => {
    const cert = selfSignedCert(certs, 'inosync-master');
    c = new Cluster({
      agents: 2,
      master: {
        tls: cert,
        // Read when the config is written, once the ports are known.
        get rsync() {
          return { listen: `127.0.0.1:${c.rsyncPort}`, binary: 'rsync', tls: false };
        },
      },
      agent: (i) => ({
        master: { url: `wss://127.0.0.1:${c.masterPort}`, key: c.masterKeyPub, ca: cert.cert, ...(i === 1 ? { allowPlainRsync: true } : {}) },
      }),
    });
    await c.setup();
    writeFileSync(join(c.origin(), 'file.txt'), 'origin');
    await c.startMaster();
  });
  after(async () => {
    await c?.cleanup();
    rmSync(certs, { recursive: true, force: true });
  });

  test('the agent that did not allow it refuses the master and syncs nothing; the one that did syncs', async () => {
    const refusing = c.startAgent(0);
    c.startAgent(1);
    await c.waitConverged(1);
    await waitFor(() => /refusing to pull files in clear/.test(readText(refusing.log)), 20_000, 'the refusal in the agent log');
    await sleep(1_000);
    assert.deepEqual(listTree(c.mirror(0)), [], 'nothing pulled in clear');
    assert.deepEqual(listTree(c.mirror(1)), ['file.txt']);
    const s = await c.fetchStatus();
    assert.equal(s?.nodes.find((n) => n.name === c.agentName(0))?.connected, false);
  });
});
