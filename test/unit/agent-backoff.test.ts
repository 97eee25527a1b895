// The agent's reconnect backoff, timed by a ManualClock: a real agent dials a
// real port whose listener drops every connection, and the test counts dials.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from '../../src/agent/agent.js';
import { generateKeyFile } from '../../src/common/keyfile.js';
import { ManualClock } from '../../harness/manual-clock.js';
import type { AgentConfig } from '../../src/config/types.js';
import { quietLog } from '../../harness/quiet-log.js';
import { sleep, waitFor } from '../../harness/wait.js';


test('the agent redials after a jittered delay that doubles up to the maximum; SIGHUP (hup) dials at once', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'inosync-backoff-'));
  let dials = 0;
  const server = createServer((s: Socket) => {
    dials++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const clock = new ManualClock();
  const config: AgentConfig = {
    file: join(dir, 'agent.yaml'),
    name: 'mirror1',
    key: join(dir, 'agent.key'),
    master: { url: `ws://127.0.0.1:${port}`, key: generateKeyFile(join(dir, 'master.key')) },
    state: join(dir, 'state'),
    rsync: { binary: 'rsync', bwlimit: 0, extra: [], timeout: 30 },
    paths: [],
  };
  generateKeyFile(config.key);
  const agent = new Agent(config, { log: quietLog, clock, backoffMinMs: 1_000, backoffMaxMs: 4_000 });
  t.after(async () => {
    await agent.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The next dial comes no sooner than 0.75 and no later than 1.25 times `base` after the last failed. */
  const nextDialWithin = async (base: number): Promise<void> => {
    await waitFor(() => clock.waiting === 1, 5_000, 'the agent to schedule a redial');
    const before = dials;
    clock.advance(base * 0.75 - 1);
    await sleep(50);
    assert.equal(dials, before, `no redial before ${base * 0.75} ms`);
    clock.advance(base * 0.5 + 1);
    await waitFor(() => dials === before + 1, 5_000, `a redial within ${base * 1.25} ms`);
  };

  await agent.start();
  await waitFor(() => dials === 1, 5_000, 'the first dial');
  for (const base of [1_000, 2_000, 4_000, 4_000]) await nextDialWithin(base);

  await waitFor(() => clock.waiting === 1, 5_000, 'the agent to schedule a redial');
  const before = dials;
  agent.hup();
  await waitFor(() => dials === before + 1, 5_000, 'hup to dial at once');
  assert.equal(agent.connected, false);
  await nextDialWithin(1_000);
});
