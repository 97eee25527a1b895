// Issue 10, item 7: a master holding the real key sends a welcome whose
// exclude holds a NUL. The agent used to pass it to rsync's argument builder,
// which threw, and the unhandled rejection ended the process (exit 1), again
// at every restart. Now the welcome is refused at the edge, the agent logs
// why and keeps trying, alive; a sane master then gets it back to work.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type Proc } from '../harness/cluster.js';
import { FakeMaster } from '../harness/fake-master.js';
import { agentPub, readText, signerOf } from '../harness/security.js';
import { sleep, waitFor } from '../harness/wait.js';
import { changes } from '../harness/fake-master.js';

describe('security: a hostile welcome', { timeout: 120_000 }, () => {
  let c: Cluster;
  let fm: FakeMaster | null = null;
  let agent: Proc;
  let exited: number | null | 'running' = 'running';

  before(async () => {
    c = await new Cluster({ agents: 1, paths: [{ name: 'www' }] }).setup();
    mkdirSync(join(c.origin(), 'ok'), { recursive: true });
    writeFileSync(join(c.origin(), 'ok/file.txt'), 'origin');
  });
  after(async () => {
    await c?.cleanup();
    await fm?.stop();
  });

  const master = (exclude: string[]) =>
    new FakeMaster({
      port: c.masterPort,
      signer: signerOf(c, 'master'),
      agents: new Map([['mirror0', agentPub(c, 0)]]),
      paths: [{ name: 'www', exclude }],
      rsync: { port: c.rsyncPort, modules: [{ name: 'www', path: c.origin() }], nodes: ['mirror0'] },
    }).start();

  test('an exclude with a NUL is refused; the agent stays up and says why', async () => {
    fm = await master(['secret\0/etc']);
    agent = c.startAgent(0);
    void agent.exited.then((code) => (exited = code));
    // What crashed it: a batch after that welcome (sent regardless; the refusing agent has hung up).
    const first = await fm.nextPeer(20_000);
    first.send(first.seal(first.batchBody(1, [{ name: 'www', full: true, files: [], dirs: [], trees: [] }])));
    await waitFor(() => /bad exclude pattern/.test(readText(agent.log)) || exited !== 'running', 20_000, 'the refusal in the agent log');
    await waitFor(() => fm!.hellos.length >= 2, 20_000, 'the agent to try again');
    await sleep(500);
    assert.equal(exited, 'running', `the agent is still running:\n${readText(agent.log)}`);
    assert.match(readText(agent.log), /bad exclude pattern/);
    assert.ok(fm.peers.every((p) => p.replies.length === 0), 'nothing was acted on');
  });

  test('with a sane master again, the same agent process syncs', async () => {
    await fm!.stop();
    fm = await master(['*.tmp']);
    const peer = await fm.nextPeer(30_000);
    peer.send(peer.seal(peer.batchBody(1, [changes('www', ['ok/file.txt'])])));
    const r = await peer.waitReply((x) => x.msg?.t === 'result', 20_000);
    assert.equal(r.msg?.t === 'result' && r.msg.ok, true);
    assert.equal(exited, 'running');
  });
});
