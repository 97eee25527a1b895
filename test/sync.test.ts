// The whole sync path with real processes: a master, agents, rsync daemon,
// real files. Every scenario ends with a complete tree comparison.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';

function rsyncRuns(log: string): number {
  return readFileSync(log, 'utf8').split('\n').filter((l) => / DEBUG rsync /.test(l)).length;
}

describe('sync path', { timeout: 300_000 }, () => {
  let c: Cluster;

  before(async () => {
    c = await new Cluster({
      agents: 2,
      paths: [
        { name: 'www', exclude: ['/localhost/', '*.swp'] },
        { name: 'feeds', exclude: ['/cache/'] },
      ],
    }).setup();
    // Content present before anyone connects arrives with the initial full sync.
    await fs.mkdir(join(c.origin(), 'pre/deep'), { recursive: true });
    await fs.writeFile(join(c.origin(), 'pre/deep/a.txt'), 'before start');
    await fs.writeFile(join(c.origin('feeds'), 'feed.xml'), '<rss/>');
    await c.start();
  });

  after(async () => {
    await c?.cleanup();
  });

  const www = () => c.origin('www');

  test('an agent that connects gets a full sync first', async () => {
    await c.waitConverged();
    assert.equal(readFileSync(join(c.mirror(0), 'pre/deep/a.txt'), 'utf8'), 'before start');
    assert.equal(readFileSync(join(c.mirror(1, 'feeds'), 'feed.xml'), 'utf8'), '<rss/>');
  });

  test('create, modify, append, truncate, delete files', async () => {
    const f = join(www(), 'file.txt');
    await fs.writeFile(f, 'hello');
    await c.waitConverged();
    await fs.writeFile(f, 'hello world, modified');
    await c.waitConverged();
    await fs.appendFile(f, ' and appended');
    await c.waitConverged();
    await fs.truncate(f, 3);
    await c.waitConverged();
    await fs.rm(f);
    await c.waitConverged();
    assert.equal(existsSync(join(c.mirror(0), 'file.txt')), false);
  });

  test('whole trees, empty files and empty dirs, renames and moves', async () => {
    await fs.mkdir(join(www(), 'tree/a/b/c'), { recursive: true });
    for (let i = 0; i < 20; i++) await fs.writeFile(join(www(), `tree/a/b/c/f${i}`), `content ${i}`);
    await fs.writeFile(join(www(), 'tree/empty'), '');
    await fs.mkdir(join(www(), 'tree/emptydir'));
    await c.waitConverged();
    await fs.rename(join(www(), 'tree/a'), join(www(), 'tree/renamed'));
    await fs.rename(join(www(), 'tree/empty'), join(www(), 'tree/renamed/b/moved-empty'));
    await c.waitConverged();
    // into and out of the watched tree
    const outside = join(c.dir, 'outside');
    await fs.mkdir(join(outside, 'sub'), { recursive: true });
    await fs.writeFile(join(outside, 'sub/in.txt'), 'moved in');
    await fs.rename(join(outside, 'sub'), join(www(), 'tree/came-in'));
    await fs.rename(join(www(), 'tree/renamed/b/c'), join(outside, 'left'));
    await c.waitConverged();
    await fs.rm(join(www(), 'tree'), { recursive: true });
    await c.waitConverged();
    assert.equal(existsSync(join(c.mirror(1), 'tree')), false);
  });

  test('symlinks are copied as symlinks, never followed; modes and mtimes', async () => {
    await fs.writeFile(join(www(), 'target.txt'), 'target');
    await fs.symlink('target.txt', join(www(), 'link'));
    await fs.symlink('does/not/exist', join(www(), 'dangling'));
    await fs.symlink('/etc', join(www(), 'outside-link'));
    await fs.writeFile(join(www(), 'script.sh'), '#!/bin/sh\n');
    await fs.chmod(join(www(), 'script.sh'), 0o751);
    await fs.utimes(join(www(), 'target.txt'), new Date('2001-02-03T04:05:06Z'), new Date('2001-02-03T04:05:06Z'));
    await c.waitConverged();
    const st = await fs.lstat(join(c.mirror(0), 'outside-link'));
    assert.ok(st.isSymbolicLink());
    assert.equal(await fs.readlink(join(c.mirror(0), 'dangling')), 'does/not/exist');
    await fs.chmod(join(www(), 'script.sh'), 0o700);
    await c.waitConverged();
    assert.equal((await fs.stat(join(c.mirror(1), 'script.sh'))).mode & 0o777, 0o700);
  });

  test('odd file names and a 100-level deep tree', async () => {
    const names = ['with space', 'ünïcødé-名前', 'new\nline', '-leading-dash', 'glob*?[]\\chars', 'x'.repeat(255), "quote'\"", '.hidden'];
    await fs.mkdir(join(www(), 'odd'));
    for (const n of names) await fs.writeFile(join(www(), 'odd', n), `name: ${n}`);
    await fs.mkdir(join(www(), 'odd', 'dir*['));
    await fs.writeFile(join(www(), 'odd', 'dir*[', 'inner?'), 'inner');
    let deep = join(www(), 'deep');
    for (let i = 0; i < 100; i++) deep = join(deep, `d${i}`);
    await fs.mkdir(deep, { recursive: true });
    await fs.writeFile(join(deep, 'bottom.txt'), 'bottom');
    await c.waitConverged();
    // deletions of odd names propagate too
    await fs.rm(join(www(), 'odd', 'glob*?[]\\chars'));
    await fs.rm(join(www(), 'odd', 'new\nline'));
    await fs.rm(join(www(), 'odd', 'dir*['), { recursive: true });
    await fs.writeFile(join(deep, 'bottom.txt'), 'changed at the bottom');
    await c.waitConverged();
    assert.equal(existsSync(join(c.mirror(0), 'odd', 'glob*?[]\\chars')), false);
  });

  test('a same-size rewrite within the same second reaches every mirror', async () => {
    const f = join(www(), 'same-size.txt');
    for (let round = 0; round < 5; round++) {
      await fs.writeFile(f, `AAAA${round}`);
      await c.waitConverged();
      const st = await fs.stat(f);
      await fs.writeFile(f, `BBBB${round}`);
      // Same size, and put the mtime back into the same second.
      const sameSecond = new Date(Math.floor(st.mtimeMs / 1000) * 1000 + 500);
      await fs.utimes(f, sameSecond, sameSecond);
      await c.waitConverged();
      assert.equal(readFileSync(join(c.mirror(0), 'same-size.txt'), 'utf8'), `BBBB${round}`);
      assert.equal(readFileSync(join(c.mirror(1), 'same-size.txt'), 'utf8'), `BBBB${round}`);
    }
  });

  test("an editor's atomic save leaves no temp file and readers never see a partial file", async () => {
    const f = join(www(), 'page.html');
    const versions = new Set<string>();
    const version = (i: number) => `<html>${String(i).repeat(200_000)}</html>`;
    await fs.writeFile(f, version(0));
    versions.add(version(0));
    await c.waitConverged();
    let stop = false;
    let torn = 0;
    let reads = 0;
    const reader = (async () => {
      while (!stop) {
        try {
          const text = await fs.readFile(join(c.mirror(0), 'page.html'), 'utf8');
          reads++;
          if (!versions.has(text)) torn++;
        } catch {
          // between unlink and rename is impossible with rename(2); ENOENT would be a bug too
          torn++;
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    for (let i = 1; i <= 8; i++) {
      versions.add(version(i));
      const tmp = join(www(), `.page.html.swp`);
      await fs.writeFile(tmp, version(i));
      await fs.rename(tmp, f);
      await new Promise((r) => setTimeout(r, 30));
    }
    await c.waitConverged();
    stop = true;
    await reader;
    assert.ok(reads > 0);
    assert.equal(torn, 0, 'a reader saw a partial or missing file');
    assert.equal(existsSync(join(c.mirror(0), '.page.html.swp')), false);
  });

  test('excluded paths trigger no sync and are never transferred; excludes are per path', async () => {
    await c.waitIdle();
    const before = await c.fetchStatus();
    await fs.mkdir(join(www(), 'localhost'), { recursive: true });
    await fs.writeFile(join(www(), 'localhost', 'private.txt'), 'never leaves');
    await fs.writeFile(join(www(), 'notes.swp'), 'swap file');
    // In the other path the same names are not excluded.
    await fs.mkdir(join(c.origin('feeds'), 'localhost'), { recursive: true });
    await fs.writeFile(join(c.origin('feeds'), 'localhost', 'public.txt'), 'travels');
    await fs.mkdir(join(c.origin('feeds'), 'cache'), { recursive: true });
    await fs.writeFile(join(c.origin('feeds'), 'cache', 'x'), 'cached');
    await waitFor(() => existsSync(join(c.mirror(0, 'feeds'), 'localhost', 'public.txt')), 10_000, 'feeds synced');
    await c.waitIdle();
    const after_ = await c.fetchStatus();
    // Only the feeds change made batches; the www excluded ones made none.
    const wwwPath = after_!.paths.find((p) => p.name === 'www')!;
    const beforeWww = before!.paths.find((p) => p.name === 'www')!;
    assert.equal(wwwPath.lastEvent, beforeWww.lastEvent, 'an excluded change counted as an event');
    assert.equal(existsSync(join(c.mirror(0), 'localhost')), false);
    assert.equal(existsSync(join(c.mirror(0), 'notes.swp')), false);
    assert.equal(existsSync(join(c.mirror(1, 'feeds'), 'cache')), false);
    // A mirror's own file in an excluded path survives syncs, also a full one.
    await fs.mkdir(join(c.mirror(0), 'localhost'));
    await fs.writeFile(join(c.mirror(0), 'localhost', 'mirror-own.txt'), 'mine');
    await fs.writeFile(join(www(), 'trigger.txt'), 'x');
    await waitFor(() => existsSync(join(c.mirror(0), 'trigger.txt')), 10_000, 'trigger synced');
    assert.equal(readFileSync(join(c.mirror(0), 'localhost', 'mirror-own.txt'), 'utf8'), 'mine');
    await fs.rm(join(c.mirror(0), 'localhost'), { recursive: true });
  });

  test('a burst is one rsync per batch per path, never one per file', async () => {
    await c.waitIdle();
    const runsBefore = rsyncRuns(c.agents[0]!.log);
    await fs.mkdir(join(www(), 'burst'));
    for (let d = 0; d < 10; d++) {
      await fs.mkdir(join(www(), 'burst', `d${d}`));
      await Promise.all(Array.from({ length: 100 }, (_, i) => fs.writeFile(join(www(), 'burst', `d${d}`, `f${i}`), `${d}/${i}`)));
    }
    await c.waitConverged();
    await c.waitIdle();
    const runs = rsyncRuns(c.agents[0]!.log) - runsBefore;
    assert.ok(runs >= 1 && runs <= 30, `1000 files took ${runs} rsync runs`);
  });

  test('a restarted agent resumes where it was; several agents converge independently', async () => {
    await c.waitIdle();
    await c.stopAgent(1);
    await fs.writeFile(join(www(), 'while-away.txt'), 'agent 1 was away');
    await fs.rm(join(www(), 'burst'), { recursive: true });
    await c.waitConverged(0);
    assert.equal(existsSync(join(c.mirror(1), 'while-away.txt')), false);
    assert.ok(existsSync(join(c.dir, 'mirror1', 'state', 'mirror1.applied.json')));
    c.startAgent(1);
    await c.waitConverged();
    await c.waitIdle();
  });

  test('after a master restart agents reconnect and converge', async () => {
    await c.stopMaster();
    await fs.writeFile(join(www(), 'while-master-down.txt'), 'written while the master was down');
    await fs.rm(join(www(), 'odd'), { recursive: true });
    await c.startMaster();
    await c.waitConverged(undefined, 60_000);
    await c.waitIdle(60_000);
  });
});
