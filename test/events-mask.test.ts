// The `events` setting (the seed's emask): only the listed kinds of change
// trigger a sync. Batches reach an agent in order, so once a marker written
// after a change has arrived, a change that was admitted has arrived too.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';

describe('events: [create, attrib]', { timeout: 120_000 }, () => {
  let c: Cluster;
  let marks = 0;

  before(async () => {
    c = await new Cluster({ agents: 1, master: { events: ['create', 'attrib'], reconcile: 0 } }).setup();
    await fs.writeFile(join(c.origin(), 'kept.txt'), 'on both\n');
    await c.start();
    await c.waitConverged();
  });

  after(async () => {
    await c?.cleanup();
  });

  /** Creates a new file and waits for it on the mirror: what was admitted before it is there too. */
  async function marker(): Promise<void> {
    const name = `marker-${++marks}`;
    await fs.writeFile(join(c.origin(), name), name);
    await waitFor(() => existsSync(join(c.mirror(0), name)), 20_000, `${name} on the mirror`, () => c.logs());
  }

  test('a created file is synced', async () => {
    await fs.writeFile(join(c.origin(), 'new.txt'), 'new\n');
    await waitFor(() => existsSync(join(c.mirror(0), 'new.txt')), 20_000, 'new.txt on the mirror', () => c.logs());
    assert.equal(readFileSync(join(c.mirror(0), 'new.txt'), 'utf8'), 'new\n');
  });

  test('a chmod is synced: attrib is listed', async () => {
    await fs.chmod(join(c.origin(), 'kept.txt'), 0o600);
    await waitFor(() => (statSync(join(c.mirror(0), 'kept.txt')).mode & 0o777) === 0o600, 20_000, 'the new mode on the mirror', () => c.logs());
  });

  test('a delete is not propagated: delete is not listed', async () => {
    await fs.rm(join(c.origin(), 'kept.txt'));
    await marker();
    assert.ok(existsSync(join(c.mirror(0), 'kept.txt')), 'the mirror keeps the file the origin deleted');
  });
});

describe('events: [delete]', { timeout: 120_000 }, () => {
  let c: Cluster;

  before(async () => {
    c = await new Cluster({ agents: 1, master: { events: ['delete'], reconcile: 0 } }).setup();
    await fs.writeFile(join(c.origin(), 'doomed.txt'), 'x');
    await fs.writeFile(join(c.origin(), 'witness.txt'), 'x');
    await c.start();
    await c.waitConverged();
  });

  after(async () => {
    await c?.cleanup();
  });

  test('creates and writes are not synced, deletes are', async () => {
    await fs.writeFile(join(c.origin(), 'created.txt'), 'not listed');
    await fs.writeFile(join(c.origin(), 'witness.txt'), 'written, not listed');
    await fs.rm(join(c.origin(), 'doomed.txt'));
    await waitFor(() => !existsSync(join(c.mirror(0), 'doomed.txt')), 20_000, 'the delete on the mirror', () => c.logs());
    // The create and the write came first, and would have been in this batch or an earlier one.
    assert.ok(!existsSync(join(c.mirror(0), 'created.txt')), 'a create was synced');
    assert.equal(readFileSync(join(c.mirror(0), 'witness.txt'), 'utf8'), 'x');
  });
});
