// Both watcher backends against real filesystem operations. Events are
// asynchronous and batched differently per backend, so every assertion waits
// for a condition rather than for a time, and "nothing reported" is checked
// after a later marker event has come through.

import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  appendFileSync,
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWatcher } from '../src/master/watcher/index.js';
import { countInotifyWatches } from '../src/master/watcher/inotify-watches.js';
import type { BackendName, WatchEvent, WatchProblem, Watcher } from '../src/master/watcher/types.js';
import { waitFor } from '../harness/wait.js';

const BACKENDS: BackendName[] = ['inotify', 'chokidar', 'parcel'];
const WAIT_MS = 8000;

const scratch: string[] = [];
after(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function tempDir(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), `inosync-watch-${tag}-`));
  scratch.push(dir);
  return dir;
}

interface Session {
  root: string;
  events: WatchEvent[];
  problems: WatchProblem[];
  watcher: Watcher;
  ignoreCalls: string[];
  /** waits until an event matching kind/path (and isDir, if given) arrived */
  expect(kind: WatchEvent['kind'], path: string, isDir?: boolean): Promise<void>;
  /**
   * waits until the creation of `path` was reported, by itself or as part of
   * an ancestor directory reported created (a tree: the consumer syncs all of
   * it, so a backend need not list what it found inside)
   */
  expectCreated(path: string, isDir: boolean): Promise<void>;
  /** creates a marker file and waits for it: everything before it has been reported */
  settle(): Promise<void>;
  seen(kind: WatchEvent['kind'], path: string, isDir?: boolean): boolean;
}

async function withWatcher(
  backend: BackendName,
  opts: { setup?: (root: string) => void; ignore?: (rel: string, isDir: boolean) => boolean },
  body: (s: Session) => Promise<void>,
): Promise<void> {
  const root = tempDir(backend);
  opts.setup?.(root);
  const events: WatchEvent[] = [];
  const problems: WatchProblem[] = [];
  const ignoreCalls: string[] = [];
  const userIgnore = opts.ignore ?? (() => false);
  const watcher = await startWatcher(backend, {
    root,
    ignore: (rel, isDir) => {
      ignoreCalls.push(rel);
      return userIgnore(rel, isDir);
    },
    onEvents: (batch) => {
      assert.ok(Array.isArray(batch) && batch.length > 0, 'onEvents gets non-empty arrays');
      events.push(...batch);
    },
    onProblem: (p) => problems.push(p),
  });
  let markers = 0;
  const seen = (kind: WatchEvent['kind'], path: string, isDir?: boolean): boolean =>
    events.some((e) => e.kind === kind && e.path === path && (isDir === undefined || e.isDir === isDir));
  const s: Session = {
    root,
    events,
    problems,
    watcher,
    ignoreCalls,
    seen,
    expect: (kind, path, isDir) =>
      waitFor(
        () => seen(kind, path, isDir),
        WAIT_MS,
        `${kind} ${JSON.stringify(path)}${isDir === undefined ? '' : ` isDir=${isDir}`}`,
        () => `got ${JSON.stringify(events.slice(-30))}`,
      ),
    expectCreated: (path, isDir) =>
      waitFor(
        () => seen('create', path, isDir) || events.some((e) => e.kind === 'create' && e.isDir && path.startsWith(e.path + '/')),
        WAIT_MS,
        `create ${JSON.stringify(path)} or of a directory above it`,
        () => `got ${JSON.stringify(events.slice(-30))}`,
      ),
    settle: async () => {
      const name = `settle-marker-${++markers}`;
      writeFileSync(join(root, name), '');
      await s.expect('create', name);
      // chokidar's raw supplement can trail its own events by a few lstats.
      await new Promise((r) => setTimeout(r, 100));
    },
  };
  try {
    await body(s);
    assert.deepEqual(problems, [], 'no problems reported');
    for (const e of events) assert.notEqual(e.path, '', 'event paths are never empty');
    assert.ok(!ignoreCalls.includes(''), 'ignore is never asked about the root');
  } finally {
    await watcher.close();
  }
}

for (const backend of BACKENDS) {
  describe(`watcher backend ${backend}`, () => {
    it('reports a created file', () =>
      withWatcher(backend, {}, async (s) => {
        writeFileSync(join(s.root, 'f'), 'x');
        await s.expect('create', 'f', false);
      }));

    it('reports a rewritten file as modified', () =>
      withWatcher(backend, { setup: (r) => writeFileSync(join(r, 'f'), 'old') }, async (s) => {
        writeFileSync(join(s.root, 'f'), 'new content');
        await s.expect('modify', 'f', false);
      }));

    it('reports an append as modified', () =>
      withWatcher(backend, { setup: (r) => writeFileSync(join(r, 'f'), 'a') }, async (s) => {
        appendFileSync(join(s.root, 'f'), 'b');
        await s.expect('modify', 'f', false);
      }));

    it('reports a truncation as modified', () =>
      withWatcher(backend, { setup: (r) => writeFileSync(join(r, 'f'), 'abc') }, async (s) => {
        truncateSync(join(s.root, 'f'), 0);
        await s.expect('modify', 'f', false);
      }));

    it('reports chmod of a file read since its last write as modified', () =>
      withWatcher(backend, { setup: (r) => writeFileSync(join(r, 'f'), 'abc') }, async (s) => {
        readFileSync(join(s.root, 'f'));
        chmodSync(join(s.root, 'f'), 0o600);
        await s.expect('modify', 'f', false);
      }));

    it('reports a deleted file', () =>
      withWatcher(backend, { setup: (r) => writeFileSync(join(r, 'f'), 'x') }, async (s) => {
        rmSync(join(s.root, 'f'));
        await s.expect('delete', 'f');
      }));

    it('reports a created directory as a directory', () =>
      withWatcher(backend, {}, async (s) => {
        mkdirSync(join(s.root, 'd'));
        await s.expect('create', 'd', true);
      }));

    it('reports the top of a recursively deleted tree', () =>
      withWatcher(
        backend,
        {
          setup: (r) => {
            mkdirSync(join(r, 'a/b/c'), { recursive: true });
            writeFileSync(join(r, 'a/b/c/f'), 'x');
            writeFileSync(join(r, 'a/g'), 'x');
          },
        },
        async (s) => {
          rmSync(join(s.root, 'a'), { recursive: true });
          await s.expect('delete', 'a');
          assert.ok(!s.events.some((e) => e.kind !== 'delete' && e.path.startsWith('a/')), 'nothing but deletes below a');
        },
      ));

    it('reports a file renamed within the tree as delete + create', () =>
      withWatcher(backend, { setup: (r) => writeFileSync(join(r, 'f'), 'x') }, async (s) => {
        renameSync(join(s.root, 'f'), join(s.root, 'g'));
        await s.expect('delete', 'f');
        await s.expect('create', 'g', false);
      }));

    it('reports a directory renamed within the tree as delete + create, and watches it under its new name', () =>
      withWatcher(
        backend,
        {
          setup: (r) => {
            mkdirSync(join(r, 'a/b/c'), { recursive: true });
            writeFileSync(join(r, 'a/b/c/f'), 'x');
          },
        },
        async (s) => {
          renameSync(join(s.root, 'a'), join(s.root, 'a2'));
          await s.expect('delete', 'a');
          await s.expect('create', 'a2', true);
          await s.settle();
          writeFileSync(join(s.root, 'a2/b/c/new'), 'x');
          await s.expect('create', 'a2/b/c/new', false);
        },
      ));

    it('reports a tree moved into the root and watches all of it', () =>
      withWatcher(backend, {}, async (s) => {
        const outside = tempDir('outside');
        mkdirSync(join(outside, 'in/q/r'), { recursive: true });
        writeFileSync(join(outside, 'in/q/r/f'), 'x');
        renameSync(join(outside, 'in'), join(s.root, 'in'));
        await s.expect('create', 'in', true);
        await s.expectCreated('in/q/r/f', false);
        if (backend === 'chokidar') {
          // chokidar reports a moved-in tree's entries before its watch of
          // each directory is in place; a file written in that window is
          // missed (seen in about 1 of 6 runs here; the reconciliation covers
          // it). What must hold is that the watch comes: a later file is seen.
          const deadline = Date.now() + WAIT_MS;
          for (let k = 1; ; k++) {
            writeFileSync(join(s.root, 'in/q/r', `g${k}`), 'x');
            await new Promise((r) => setTimeout(r, 250));
            if (Array.from({ length: k }, (_, j) => `in/q/r/g${j + 1}`).some((p) => s.seen('create', p, false))) break;
            assert.ok(Date.now() < deadline, `chokidar reported none of ${k} files written in in/q/r`);
          }
          return;
        }
        writeFileSync(join(s.root, 'in/q/r/g'), 'x');
        await s.expect('create', 'in/q/r/g', false);
      }));

    it('reports a tree moved out of the root as deleted and forgets it', () =>
      withWatcher(
        backend,
        {
          setup: (r) => {
            mkdirSync(join(r, 'x/y'), { recursive: true });
            writeFileSync(join(r, 'x/y/f'), 'x');
          },
        },
        async (s) => {
          const outside = tempDir('outside');
          renameSync(join(s.root, 'x'), join(outside, 'x'));
          await s.expect('delete', 'x');
          writeFileSync(join(outside, 'x/y/later'), 'x');
          await s.settle();
          assert.ok(!s.events.some((e) => e.path.endsWith('later')), 'no events from the moved-out tree');
        },
      ));

    it('reports symlinks, dangling ones too, as non-directories without following them', () =>
      withWatcher(backend, {}, async (s) => {
        const target = tempDir('target');
        symlinkSync(target, join(s.root, 'link'));
        symlinkSync('nowhere', join(s.root, 'dangling'));
        await s.expect('create', 'link', false);
        await s.expect('create', 'dangling', false);
        writeFileSync(join(target, 'through-link'), 'x');
        await s.settle();
        assert.ok(!s.events.some((e) => e.path.startsWith('link/')), 'symlinked directory not followed');
        assert.ok(!s.events.some((e) => e.isDir && (e.path === 'link' || e.path === 'dangling')));
        rmSync(join(s.root, 'dangling'));
        await s.expect('delete', 'dangling');
        assert.equal(readlinkSync(join(s.root, 'link')), target);
      }));

    it('reports names with spaces, newlines, unicode, a leading dash, glob characters and editor suffixes', () =>
      withWatcher(backend, {}, async (s) => {
        const names = ['with space', 'new\nline', 'ünïcødé 日本', '-leading', '*?[]\\', 'backup~', '.x.swp', 'a\\b'];
        for (const name of names) writeFileSync(join(s.root, name), 'x');
        mkdirSync(join(s.root, '*?[dir]\\'));
        writeFileSync(join(s.root, '*?[dir]\\', '-inner file'), 'x');
        for (const name of names) await s.expect('create', name, false);
        await s.expectCreated('*?[dir]\\/-inner file', false);
      }));

    it('watches a 50-level tree created after start, down to the bottom', () =>
      withWatcher(backend, {}, async (s) => {
        const levels = Array.from({ length: 50 }, (_, i) => `d${i}`);
        const bottom = levels.join('/');
        mkdirSync(join(s.root, bottom), { recursive: true });
        writeFileSync(join(s.root, bottom, 'early'), 'x');
        await s.expectCreated(`${bottom}/early`, false);
        await s.settle();
        writeFileSync(join(s.root, bottom, 'late'), 'x');
        await s.expect('create', `${bottom}/late`, false);
      }));

    it('never reports, and does not watch, what the ignore function prunes', async () => {
      const baseline = countInotifyWatches();
      const isSkip = (rel: string, isDir: boolean): boolean => isDir && (rel === 'skip' || rel.endsWith('/skip'));
      await withWatcher(
        backend,
        {
          ignore: isSkip,
          setup: (r) => {
            for (let i = 0; i < 20; i++) {
              mkdirSync(join(r, `skip/sub${i}`), { recursive: true });
              writeFileSync(join(r, `skip/sub${i}/f`), 'x');
            }
          },
        },
        async (s) => {
          const watches = s.watcher.stats().watches;
          if (baseline !== undefined && watches !== undefined) {
            assert.ok(watches - baseline < 5, `pruned subtree is not watched (${watches - baseline} watches)`);
          }
          writeFileSync(join(s.root, 'skip/sub3/f'), 'changed');
          writeFileSync(join(s.root, 'skip/new'), 'x');
          // Created inside an already watched directory, an excluded directory
          // is one parcel watches by itself: only the filter keeps it quiet.
          mkdirSync(join(s.root, 'later'));
          await s.expect('create', 'later', true);
          mkdirSync(join(s.root, 'later/skip'));
          await s.settle();
          mkdirSync(join(s.root, 'later/skip/deep'));
          writeFileSync(join(s.root, 'later/skip/f'), 'x');
          writeFileSync(join(s.root, 'later/skip/deep/f'), 'x');
          rmSync(join(s.root, 'later/skip/f'));
          writeFileSync(join(s.root, 'later/visible'), 'x');
          await s.expect('create', 'later/visible', false);
          await s.settle();
          const leaked = s.events.filter((e) => e.path === 'skip' || e.path.startsWith('skip/') || e.path.includes('/skip'));
          assert.deepEqual(leaked, []);
        },
      );
    });

    it('stops reporting and releases its watches on close()', async () => {
      const baseline = countInotifyWatches();
      const root = tempDir('close');
      mkdirSync(join(root, 'a/b'), { recursive: true });
      const events: WatchEvent[] = [];
      const watcher = await startWatcher(backend, {
        root,
        ignore: () => false,
        onEvents: (b) => events.push(...b),
        onProblem: () => {},
      });
      assert.equal(watcher.backend, backend);
      await watcher.close();
      writeFileSync(join(root, 'after-close'), 'x');
      writeFileSync(join(root, 'a/b/after-close'), 'x');
      await new Promise((r) => setTimeout(r, 400));
      assert.deepEqual(events, []);
      if (baseline !== undefined) assert.equal(countInotifyWatches(), baseline);
    });

    it('reports a deleted root as a root problem', async () => {
      const root = tempDir('root');
      const problems: WatchProblem[] = [];
      const watcher = await startWatcher(backend, {
        root,
        ignore: () => false,
        onEvents: () => {},
        onProblem: (p) => problems.push(p),
      });
      try {
        rmSync(root, { recursive: true });
        await waitFor(() => problems.length > 0, WAIT_MS, 'a root problem');
        assert.equal(problems[0]?.kind, 'root');
        assert.match(problems[0]?.message ?? '', /restart/);
      } finally {
        await watcher.close();
      }
    });

    it('rejects a root that is not an existing directory', async () => {
      const file = join(tempDir('notdir'), 'file');
      writeFileSync(file, 'x');
      const opts = { ignore: () => false, onEvents: () => {}, onProblem: () => {} };
      await assert.rejects(startWatcher(backend, { ...opts, root: file }), /not a directory/);
      await assert.rejects(startWatcher(backend, { ...opts, root: file + '-missing' }), /exists/);
      await assert.rejects(startWatcher(backend, { ...opts, root: 'relative/dir' }), /absolute/);
    });
  });
}

// The limit is lowered inside a user namespace of its own
// (/proc/sys/user/max_inotify_watches is per namespace), so other processes
// on the machine, such as tests running in parallel, are not affected.
const CHILD = new URL('./fixtures/watch-limit-child.js', import.meta.url).pathname;
const canUnshare = spawnSync('unshare', ['--user', '--map-root-user', 'true']).status === 0;

describe('inotify watch limit (ENOSPC)', () => {
  for (const backend of BACKENDS) {
    it(
      `${backend}: reports one 'limit' problem however many paths fail`,
      { skip: canUnshare ? false : 'cannot create a user namespace (unshare --user) here' },
      async () => {
        const root = tempDir('limit');
        for (let i = 0; i < 1000; i++) mkdirSync(join(root, `d${i}`));
        const r = spawnSync('unshare', ['--user', '--map-root-user', process.execPath, CHILD, backend, root, '200'], { encoding: 'utf8', timeout: 60_000 });
        assert.equal(r.status, 0, r.stderr);
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { started: boolean; startError: string | null; problems: WatchProblem[] };
        const limits = out.problems.filter((p) => p.kind === 'limit');
        assert.equal(limits.length, 1, `one limit problem, got ${JSON.stringify(out.problems.map((p) => p.kind))}`);
        assert.match(limits[0]?.message ?? '', /sysctl -w fs\.inotify\.max_user_watches=\d+/);
        assert.match(limits[0]?.message ?? '', /\/etc\/sysctl\.d\//);
        if (backend !== 'parcel') {
          assert.ok(out.started, `${backend} still starts, partly watching`);
        } else {
          assert.equal(out.started, false, 'parcel cannot start');
          assert.match(String(out.startError), /watch limit/);
        }
      },
    );
  }
});
