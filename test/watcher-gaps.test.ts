// Holes in what the chokidar backend reported, each found by the soak (a
// mirror kept an entry the origin had lost, or missed a change for good),
// reduced here to the filesystem operations that open them.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWatcher } from '../src/master/watcher/index.js';
import type { BackendName, WatchEvent, Watcher } from '../src/master/watcher/types.js';
import { sleep } from '../harness/wait.js';

const scratch: string[] = [];
after(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'inosync-gaps-'));
  scratch.push(d);
  return d;
}

/** Until an event of one of `kinds` about `path` arrived at or after index `from`. */
async function until(events: WatchEvent[], kinds: WatchEvent['kind'][], path: string, from = 0): Promise<void> {
  const deadline = Date.now() + 8_000;
  while (!events.slice(from).some((e) => kinds.includes(e.kind) && e.path === path)) {
    if (Date.now() > deadline) throw new Error(`no ${kinds.join('/')} of ${JSON.stringify(path)} in ${JSON.stringify(events.slice(from))}`);
    await sleep(10);
  }
}

async function watch(backend: BackendName, root: string, events: WatchEvent[]): Promise<Watcher> {
  return await startWatcher(backend, { root, ignore: () => false, onEvents: (b) => events.push(...b), onProblem: () => {} });
}

// The default backend runs the same cases: they are what the soak's churn does.
for (const backend of ['chokidar', 'inotify'] as const)
describe(`${backend} backend: changes chokidar used to miss`, () => {
  it('the deletion of a dangling symlink that existed before watching started', async () => {
    const root = tempDir();
    await fs.symlink('nowhere/at/all', join(root, 'dangling'));
    await fs.symlink('nowhere/either', join(root, 'moved'));
    const events: WatchEvent[] = [];
    const w = await watch(backend, root, events);
    try {
      await fs.rm(join(root, 'dangling'));
      await fs.rename(join(root, 'moved'), join(root, 'renamed'));
      await until(events, ['delete'], 'dangling');
      await until(events, ['delete'], 'moved');
    } finally {
      await w.close();
    }
  });

  it('a file saved over a symlink that was moved into place, and the writes after it', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'from'));
    mkdirSync(join(root, 'to/sub'), { recursive: true });
    writeFileSync(join(root, 'to/sub/target'), 'target');
    const events: WatchEvent[] = [];
    const w = await watch(backend, root, events);
    try {
      // Dangling where it is made, valid once moved next to its target.
      await fs.symlink('sub/target', join(root, 'from/link'));
      await until(events, ['create'], 'from/link');
      await fs.rename(join(root, 'from/link'), join(root, 'to/link'));
      await until(events, ['create'], 'to/link');
      await sleep(200);
      let mark = events.length;
      // An editor's save: a new file renamed over the link.
      writeFileSync(join(root, 'to/link.tmp'), 'saved');
      await fs.rename(join(root, 'to/link.tmp'), join(root, 'to/link'));
      await until(events, ['create', 'modify'], 'to/link', mark);
      await sleep(200);
      mark = events.length;
      writeFileSync(join(root, 'to/link'), 'written again');
      await until(events, ['modify'], 'to/link', mark);
    } finally {
      await w.close();
    }
  });

  it('directories created while the watcher crawls the tree at start are watched', async () => {
    const root = tempDir();
    for (let i = 0; i < 200; i++) {
      mkdirSync(join(root, `a${i}/b`), { recursive: true });
      for (let j = 0; j < 10; j++) writeFileSync(join(root, `a${i}/b/f${j}`), 'x');
    }
    const made: string[] = [];
    let stop = false;
    const maker = (async () => {
      for (let k = 0; !stop; k++) {
        const d = `a${k % 200}/b/new${k}`;
        await fs.mkdir(join(root, d));
        made.push(d);
        await sleep(1);
      }
    })();
    const events: WatchEvent[] = [];
    const w = await watch(backend, root, events);
    stop = true;
    await maker;
    try {
      assert.ok(made.length > 0);
      await sleep(300);
      const mark = events.length;
      for (const d of made) writeFileSync(join(root, d, 'probe'), 'x');
      const deadline = Date.now() + 8_000;
      let missed: string[] = made;
      while (missed.length > 0 && Date.now() < deadline) {
        await sleep(50);
        const seen = new Set(events.slice(mark).map((e) => e.path));
        missed = made.filter((d) => !seen.has(`${d}/probe`));
      }
      assert.deepEqual(missed, [], `${missed.length} of ${made.length} directories made during the start are not watched`);
    } finally {
      await w.close();
    }
  });
});
