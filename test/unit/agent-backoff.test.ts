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
import type { Logger } from '../../src/common/log.js';
import { ManualClock } from '../../src/common/manual-clock.js';
import type { AgentConfig } from '../../src/config/types.js';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => quiet };

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

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
  const agent = new Agent(config, { log: quiet, clock, backoffMinMs: 1_000, backoffMaxMs: 4_000 });
  t.after(async () => {
    await agent.stop();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The next dial comes no sooner than 0.75 and no later than 1.25 times `base` after the last failed. */
  const nextDialWithin = async (base: number): Promise<void> => {
    await until(() => clock.waiting === 1, 'the agent to schedule a redial');
    const before = dials;
    clock.advance(base * 0.75 - 1);
    await pause();
    assert.equal(dials, before, `no redial before ${base * 0.75} ms`);
    clock.advance(base * 0.5 + 1);
    await until(() => dials === before + 1, `a redial within ${base * 1.25} ms`);
  };

  await agent.start();
  await until(() => dials === 1, 'the first dial');
  for (const base of [1_000, 2_000, 4_000, 4_000]) await nextDialWithin(base);

  await until(() => clock.waiting === 1, 'the agent to schedule a redial');
  const before = dials;
  agent.hup();
  await until(() => dials === before + 1, 'hup to dial at once');
  assert.equal(agent.connected, false);
  await nextDialWithin(1_000);
});
