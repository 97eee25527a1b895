import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildRsyncArgs, includeList, MAX_NAMED_RULES, MAX_RULE_BYTES, type RsyncRunSpec } from '../src/rsync/filter.js';
import type { PathChanges } from '../src/protocol/changes.js';
import { ChangeSet } from '../src/protocol/changeset.js';
import { parseRsyncStats } from '../src/rsync/stats.js';
import { classifyRsyncExit } from '../src/rsync/exit-codes.js';
import { assertTreesEqual, snapshotTree, type CompareOptions } from '../harness/tree.js';
import { findFreePort } from '../harness/ports.js';

const RSYNC = '/usr/bin/rsync';
const IS_ROOT = process.getuid?.() === 0;

function inc(c: Partial<Omit<PathChanges, 'name' | 'full'>>): PathChanges {
  return { name: 'p', full: false, files: c.files ?? [], dirs: c.dirs ?? [], trees: c.trees ?? [] };
}
const FULL: PathChanges = { name: 'p', full: true, files: [], dirs: [], trees: [] };

function rules(c: PathChanges): string[] {
  const text = includeList(c).toString('utf8');
  assert.ok(text === '' || text.endsWith('\0'), 'every rule ends with NUL');
  return text === '' ? [] : text.slice(0, -1).split('\0');
}

function unitSpec(over: Partial<RsyncRunSpec> = {}): RsyncRunSpec {
  return {
    binary: RSYNC,
    url: 'rsync://master.example:8730/docs/',
    target: '/srv/mirror/docs',
    excludes: [],
    changes: inc({ files: ['a/f'] }),
    bwlimit: 0,
    timeout: 0,
    extra: [],
    maxDelete: 0,
    isRoot: true,
    ...over,
  };
}

describe('includeList', () => {
  it('names every path and ancestor once, trees with their contents, sorted', () => {
    assert.deepEqual(rules(inc({ files: ['a/b/f', 'a/b/g', 'a/h'], dirs: ['d', 'a/b'], trees: ['t/u'] })), [
      '/a',
      '/a/.*.??????',
      '/a/b',
      '/a/b/.*.??????',
      '/a/b/f',
      '/a/b/g',
      '/a/h',
      '/d',
      '/t',
      '/t/u',
      '/t/u/***',
    ]);
  });

  it('sweeps temporary files next to top-level files too', () => {
    assert.deepEqual(rules(inc({ files: ['f'] })), ['/.*.??????', '/f']);
  });

  it('gives dir entries neither contents nor a temp-file sweep', () => {
    assert.deepEqual(rules(inc({ dirs: ['a/b'] })), ['/a', '/a/b']);
  });

  it('is empty for no changes, and refuses a full sync', () => {
    assert.equal(includeList(inc({})).length, 0);
    assert.throws(() => includeList(FULL), /full sync/);
  });

  it('rejects malformed paths', () => {
    for (const bad of ['', '/a', 'a/', 'a/../b', 'a\0b']) {
      assert.throws(() => includeList(inc({ files: [bad] })), TypeError, JSON.stringify(bad));
      assert.throws(() => includeList(inc({ trees: [bad] })), TypeError, JSON.stringify(bad));
    }
  });

  it('lists crowded directories as dir/* once a batch needs more than MAX_NAMED_RULES rules', () => {
    // 3 directories x 200 deletions: 600 entries, 606 rules entry by entry.
    const files = ['a', 'b/c', 'd*e'].flatMap((dir) => Array.from({ length: 200 }, (_, i) => `${dir}/f${i}`));
    assert.deepEqual(rules(inc({ files, dirs: ['x/y'], trees: ['t'] })), ['/a', '/a/*', '/b', '/b/c', '/b/c/*', '/d\\*e', '/d\\*e/*', '/t', '/t/***', '/x', '/x/y']);
    // Top-level entries collapse into /*: their directory is the module root.
    const top = Array.from({ length: MAX_NAMED_RULES + 1 }, (_, i) => `f${i}`);
    assert.deepEqual(rules(inc({ files: top })), ['/*']);
  });

  it('keeps entries by name up to MAX_NAMED_RULES rules, and never collapses a lone entry', () => {
    // Exactly at the limit: MAX_NAMED_RULES - 2 entries in d, d itself and its temp-file sweep.
    const atLimit = Array.from({ length: MAX_NAMED_RULES - 2 }, (_, i) => `d/f${i}`);
    const r = rules(inc({ files: atLimit }));
    assert.equal(r.length, MAX_NAMED_RULES);
    assert.ok(!r.includes('/d/*'));
    // Pairs collapse in the second step; directories with one entry stay by name.
    const pairs = Array.from({ length: 200 }, (_, i) => [`p${i}/a`, `p${i}/b`]).flat();
    const singles = Array.from({ length: 200 }, (_, i) => `s${i}/only`);
    const mixed = rules(inc({ files: [...pairs, ...singles] }));
    assert.ok(mixed.includes('/p7/*') && !mixed.includes('/p7/a'), 'a pair is collapsed');
    assert.ok(mixed.includes('/s7/only') && mixed.includes('/s7/.*.??????') && !mixed.includes('/s7/*'), 'a single stays by name');
  });

  it('gives up --ignore-times when it collapses a directory', () => {
    const ignoresTimes = (files: string[]) => buildRsyncArgs(unitSpec({ changes: inc({ files }) })).args.includes('--ignore-times');
    // 256 files in 2 directories: 262 rules, under the limit.
    assert.ok(ignoresTimes(Array.from({ length: 256 }, (_, i) => `d${i % 2}/f${i}`)), 'under the limit');
    // 200 directories with one file each (600 rules) and one with 50: only that one collapses.
    const lone = Array.from({ length: 200 }, (_, i) => `d${i}/f`);
    assert.ok(ignoresTimes(lone), 'lone entries never collapse');
    assert.ok(!ignoresTimes([...lone, ...Array.from({ length: 50 }, (_, i) => `c/f${i}`)]), 'c collapsed');
  });

  it('escapes wildcards, and backslashes only in rules that are patterns', () => {
    assert.deepEqual(rules(inc({ files: ['w/a*b', 'w/q?', 'w/[x]', 'w/br]', 'w/back\\slash'] })), [
      '/w',
      '/w/.*.??????',
      '/w/\\[x]',
      '/w/a\\*b',
      '/w/back\\slash', // no wildcard: compared literally, backslash and all
      '/w/br]', // ']' alone is not a wildcard
      '/w/q\\?',
    ]);
    // The `***` and temp-file rules are patterns, so their names are escaped, backslashes included.
    assert.deepEqual(rules(inc({ trees: ['b\\s'], files: ['b\\s2/f'] })), [
      '/b\\\\s/***',
      '/b\\\\s2/.*.??????',
      '/b\\s',
      '/b\\s2',
      '/b\\s2/f',
    ]);
    assert.deepEqual(rules(inc({ files: ['x\\*/y'] })), ['/x\\\\\\*', '/x\\\\\\*/.*.??????', '/x\\\\\\*/y']);
  });

  it('passes spaces, newlines, unicode and leading dashes through', () => {
    const names = ['sp ace', 'new\nline', 'ünï 日本', '-rf', '--delete', '#c', ';c', '+ p', '- m', '!'];
    const got = rules(inc({ files: names }));
    for (const n of names) assert.ok(got.includes('/' + n), n);
  });

  it('widens a path whose rules would be too long for rsync to its deepest ancestor that fits', () => {
    const star = '*'.repeat(200);
    const deep = Array.from({ length: 11 }, () => star).join('/'); // 2210 bytes, 4420 escaped
    const got = rules(inc({ files: [`${deep}/f`], dirs: [deep] }));
    for (const r of got) assert.ok(Buffer.byteLength(r) <= MAX_RULE_BYTES, `${Buffer.byteLength(r)} bytes`);
    const esc = '\\*'.repeat(200);
    const widened = Array.from({ length: 10 }, () => esc).join('/'); // 4009 bytes escaped, `/***` fits
    assert.ok(got.includes(`/${widened}/***`));
    assert.equal(got.filter((r) => r.endsWith('/***')).length, 1);
  });

  it('keeps a rule of exactly the longest length rsync reads, and widens one byte more', () => {
    // 16 names and 15 slashes: 15 * 255 + 254 + 15 = 4094 bytes, 4095 with the leading '/'.
    const segs = Array.from({ length: 16 }, () => 'n'.repeat(255));
    segs[15] = 'n'.repeat(254);
    const fits = segs.join('/');
    assert.equal(Buffer.byteLength('/' + fits), MAX_RULE_BYTES);
    assert.deepEqual(rules(inc({ dirs: [fits] })).slice(-1), ['/' + fits]);
    const over = fits + 'n';
    const got = rules(inc({ dirs: [over] }));
    assert.ok(!got.includes('/' + over));
    assert.ok(got.includes('/' + segs.slice(0, 15).join('/') + '/***'));
  });
});

describe('buildRsyncArgs', () => {
  it('builds an incremental daemon pull', () => {
    const { args, stdin } = buildRsyncArgs(
      unitSpec({
        excludes: ['/localhost/', '*.tmp'],
        bwlimit: 100,
        timeout: 30,
        maxDelete: 50,
        extra: ['--numeric-ids'],
      }),
    );
    assert.deepEqual(args, [
      '-rlptgo',
      '--delete',
      '--force',
      '--modify-window=-1',
      '--ignore-times',
      '--sockopts=TCP_NODELAY',
      '--contimeout=30',
      '--timeout=30',
      '--bwlimit=100',
      '--max-delete=50',
      '--stats',
      '--no-human-readable',
      '--numeric-ids',
      '--no-devices',
      '--no-specials',
      '--chmod=ug-s',
      '--filter=-x security.capability',
      '--exclude=/localhost/',
      '--exclude=*.tmp',
      '--from0',
      '--include-from=-',
      '--filter=-p *',
      'rsync://master.example:8730/docs/',
      '/srv/mirror/docs/',
    ]);
    assert.deepEqual(stdin, includeList(inc({ files: ['a/f'] })));
  });

  it('compares every listed file only when no entry is a tree', () => {
    const has = (c: PathChanges) => buildRsyncArgs(unitSpec({ changes: c })).args.includes('--ignore-times');
    assert.equal(has(inc({ files: ['a'], dirs: ['b'] })), true);
    assert.equal(has(inc({ dirs: ['b'] })), true);
    assert.equal(has(inc({ files: ['a'], trees: ['t'] })), false);
    assert.equal(has(FULL), false);
    // A path too long for its own rules is widened into a tree, which counts.
    const star = Array.from({ length: 11 }, () => '*'.repeat(200)).join('/');
    assert.equal(has(inc({ files: [`${star}/f`] })), false);
  });

  it('builds a full sync: no include list, excludes kept', () => {
    const { args, stdin } = buildRsyncArgs(unitSpec({ changes: FULL, excludes: ['/localhost/'] }));
    assert.equal(stdin, null);
    assert.deepEqual(args, [
      '-rlptgo',
      '--delete',
      '--force',
      '--modify-window=-1',
      '--sockopts=TCP_NODELAY',
      '--stats',
      '--no-human-readable',
      '--no-devices',
      '--no-specials',
      '--chmod=ug-s',
      '--filter=-x security.capability',
      '--exclude=/localhost/',
      'rsync://master.example:8730/docs/',
      '/srv/mirror/docs/',
    ]);
  });

  it('leaves owner and group alone when not root', () => {
    assert.equal(buildRsyncArgs(unitSpec({ isRoot: false })).args[0], '-rlpt');
  });

  it('refuses devices and specials and strips setuid bits unless the path opts in, after any extra', () => {
    const tail = (over: Partial<RsyncRunSpec>) => {
      const { args } = buildRsyncArgs(unitSpec({ extra: ['-a'], ...over }));
      assert.ok(!args.includes('-D') && !args.some((a) => /^-[a-zA-Z]*D/.test(a) && a !== '-a'), 'no -D of its own');
      const from = args.indexOf('-a') + 1;
      return args.slice(from, args.indexOf('--from0'));
    };
    const strip = ['--chmod=ug-s', '--filter=-x security.capability'];
    assert.deepEqual(tail({}), ['--no-devices', '--no-specials', ...strip]);
    assert.deepEqual(tail({ optIns: {} }), ['--no-devices', '--no-specials', ...strip]);
    assert.deepEqual(tail({ optIns: { devices: true } }), ['--devices', '--no-specials', ...strip]);
    assert.deepEqual(tail({ optIns: { specials: true, setuid: true } }), ['--no-devices', '--specials']);
  });

  it('drops daemon-only options for a local source, and adds --dry-run on request', () => {
    const { args } = buildRsyncArgs(unitSpec({ source: '/srv/origin/', timeout: 5, dryRun: true }));
    assert.ok(!args.includes('--sockopts=TCP_NODELAY'));
    assert.ok(!args.some((a) => a.startsWith('--contimeout')));
    assert.ok(args.includes('--timeout=5'));
    assert.ok(args.includes('--dry-run'));
    assert.deepEqual(args.slice(-2), ['/srv/origin/', '/srv/mirror/docs/']);
  });

  it('puts extra arguments before the filter rules and the operands', () => {
    const { args } = buildRsyncArgs(unitSpec({ extra: ['-v', '--exclude=x'], excludes: ['y'] }));
    const at = (a: string) => args.indexOf(a);
    assert.ok(at('-v') < at('--exclude=y'));
    assert.ok(at('--exclude=x') < at('--exclude=y'));
    assert.ok(at('--exclude=y') < at('--from0'));
    assert.ok(at('--from0') < at('--include-from=-'));
    assert.ok(at('--include-from=-') < at('--filter=-p *'));
  });

  it('starts every argument of its own with "-", and no operand with it', () => {
    for (const changes of [FULL, inc({ files: ['-rf'], trees: ['--delete'] })]) {
      const { args } = buildRsyncArgs(unitSpec({ changes, excludes: ['-x'] }));
      const operands = args.slice(-2);
      assert.ok(args.slice(0, -2).every((a) => a.startsWith('-')));
      assert.ok(operands.every((a) => a.startsWith('rsync://') || a.startsWith('/')));
    }
  });

  it('rejects sources, targets and numbers that could go wrong', () => {
    const bad: Array<Partial<RsyncRunSpec>> = [
      { url: 'rsync://host:873/docs' }, // no trailing slash: would copy the module directory itself
      { url: 'rsync://host:873/' },
      { url: 'rsync://host:873/a/b/' },
      { url: '-e sh' },
      { url: 'host::docs/' },
      { source: 'relative/' },
      { source: '/no/trailing/slash' },
      { source: '--delete-excluded/' },
      { target: 'relative' },
      { target: '-rf' },
      { target: '/' },
      { target: '//' },
      { bwlimit: -1 },
      { timeout: 1.5 },
      { maxDelete: NaN },
      { excludes: [''] },
      { excludes: ['a\0b'] },
    ];
    for (const over of bad) assert.throws(() => buildRsyncArgs(unitSpec(over)), Error, JSON.stringify(over));
    assert.doesNotThrow(() => buildRsyncArgs(unitSpec({ url: 'rsync://[::1]:873/docs/' })));
    assert.doesNotThrow(() => buildRsyncArgs(unitSpec({ url: 'rsync://user@host/docs/' })));
    assert.doesNotThrow(() => buildRsyncArgs(unitSpec({ target: '/srv/mirror/' })));
  });
});

describe('parseRsyncStats', () => {
  const plain = `
Number of files: 4 (reg: 2, dir: 2)
Number of created files: 2 (reg: 2)
Number of deleted files: 4 (reg: 3, dir: 1)
Number of regular files transferred: 2
Total file size: 1234573 bytes
Total transferred file size: 1234573 bytes
Literal data: 1234573 bytes
Matched data: 0 bytes
File list size: 82
Total bytes sent: 149
Total bytes received: 1235059

sent 149 bytes  received 1235059 bytes  2470416.00 bytes/sec
total size is 1234573  speedup is 1.00
`;

  it('reads files, bytes and deletions from --stats', () => {
    assert.deepEqual(parseRsyncStats(plain), { files: 2, bytes: 1234573, deleted: 4 });
  });

  it('understands thousands separators of either locale', () => {
    const text = plain.replace('transferred: 2', 'transferred: 1,024').replace('Total transferred file size: 1234573', 'Total transferred file size: 1.234.573');
    assert.deepEqual(parseRsyncStats(text), { files: 1024, bytes: 1234573, deleted: 4 });
  });

  it('understands -h units', () => {
    const text = 'Number of deleted files: 0\nNumber of regular files transferred: 1\nTotal transferred file size: 2.24M bytes\n';
    assert.deepEqual(parseRsyncStats(text), { files: 1, bytes: 2_240_000, deleted: 0 });
    assert.equal(parseRsyncStats('Total transferred file size: 1,5K bytes\n').bytes, 1500);
  });

  it('reads zeros from output without stats, and ignores look-alike lines', () => {
    assert.deepEqual(parseRsyncStats(''), { files: 0, bytes: 0, deleted: 0 });
    assert.deepEqual(parseRsyncStats('>f+++++++++ Number of regular files transferred: 9\n'), { files: 0, bytes: 0, deleted: 0 });
  });
});

// --- real rsync -------------------------------------------------------------

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runRsync(args: string[], stdin: Buffer | null, onSpawn?: (pid: number) => void): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(RSYNC, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: onSpawn !== undefined });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.on('error', () => {}); // rsync may exit before reading all of it
    child.stdin.end(stdin ?? undefined);
    if (onSpawn && child.pid) onSpawn(child.pid);
  });
}

let base = '';
before(async () => {
  base = await mkdtemp(join(tmpdir(), 'inosync-rsync-filter-'));
});
after(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

interface Fixture {
  src: string;
  dst: string;
  spec(changes: PathChanges, over?: Partial<RsyncRunSpec>): RsyncRunSpec;
  sync(changes: PathChanges, over?: Partial<RsyncRunSpec>): Promise<RunResult>;
  /** the mirror equals the origin, apart from what `opts` leaves out */
  assertMirror(opts?: CompareOptions): Promise<void>;
}

let fixtures = 0;
async function fixture(): Promise<Fixture> {
  const root = join(base, `f${++fixtures}`);
  const src = join(root, 'origin');
  const dst = join(root, 'mirror');
  await mkdir(src, { recursive: true });
  await mkdir(dst, { recursive: true });
  const spec = (changes: PathChanges, over: Partial<RsyncRunSpec> = {}): RsyncRunSpec => ({
    ...unitSpec({ source: src + '/', target: dst, changes, timeout: 60, isRoot: IS_ROOT }),
    ...over,
  });
  return {
    src,
    dst,
    spec,
    async sync(changes, over) {
      const { args, stdin } = buildRsyncArgs(spec(changes, over));
      const r = await runRsync(args, stdin);
      return r;
    },
    async assertMirror(opts = {}) {
      assertTreesEqual(await snapshotTree(dst), await snapshotTree(src), { names: ['mirror', 'origin'], ...opts });
    },
  };
}

async function ok(r: Promise<RunResult> | RunResult): Promise<RunResult> {
  const res = await r;
  assert.equal(res.code, 0, `rsync exited ${res.code} (${res.signal}): ${res.stderr}`);
  assert.equal(res.stderr, '', 'rsync complained');
  return res;
}

async function put(path: string, content: string | Buffer, mode?: number): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  if (mode !== undefined) await chmod(path, mode);
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** A little of everything rsync must carry over. */
async function populate(src: string): Promise<void> {
  await put(join(src, 'docs/a.txt'), 'alpha\n');
  await put(join(src, 'docs/b.txt'), 'bravo\n', 0o600);
  await put(join(src, 'docs/sub/c.txt'), 'charlie\n');
  await put(join(src, 'docs/sub/deeper/d.txt'), 'delta\n');
  await chmod(join(src, 'docs/sub'), 0o750);
  await put(join(src, 'keep/k.txt'), 'kilo\n');
  await put(join(src, 'olddir/x.txt'), 'x-ray\n');
  await put(join(src, 'bin/run.sh'), '#!/bin/sh\n', 0o755);
  await mkdir(join(src, 'links'));
  await symlink('/etc/passwd', join(src, 'links/to-passwd'));
  await symlink('../docs', join(src, 'links/to-docs'));
  await symlink('nowhere', join(src, 'links/dangling'));
  await mkdir(join(src, 'empty'));
  // No FIFO or device here: mirrors refuse them by default (see 'what
  // mirrors refuse from the origin').
}

describe('rsync runs (real rsync, local source)', () => {
  it('a full sync mirrors the origin exactly and removes what the origin lacks', async () => {
    const f = await fixture();
    await populate(f.src);
    await put(join(f.dst, 'junk/file'), 'junk');
    await put(join(f.dst, 'docs/stale.txt'), 'stale');
    await ok(f.sync(FULL));
    await f.assertMirror();
    const to = join(f.dst, 'links/to-passwd');
    assert.ok((await lstat(to)).isSymbolicLink(), 'symlinks stay symlinks');
  });

  it('an incremental sync applies what is listed and nothing else', async () => {
    const f = await fixture();
    await populate(f.src);
    await ok(f.sync(FULL));
    // The mirror's own files, outside and inside a listed directory.
    await put(join(f.dst, 'keep/mirror-only.txt'), 'mine');
    await put(join(f.dst, 'docs/mirror-sibling.txt'), 'mine too');
    // Changes on the origin.
    await put(join(f.src, 'docs/new.txt'), 'new\n');
    await put(join(f.src, 'docs/a.txt'), 'ALPHA\n');
    await unlink(join(f.src, 'docs/b.txt'));
    await rm(join(f.src, 'docs/sub/deeper'), { recursive: true });
    await rename(join(f.src, 'olddir'), join(f.src, 'newdir'));
    await chmod(join(f.src, 'docs/sub'), 0o700);
    await rm(join(f.src, 'links/to-docs'));
    await symlink('../keep', join(f.src, 'links/to-docs'));
    // ...and one that is not listed, so must not travel.
    await put(join(f.src, 'keep/k.txt'), 'KILO\n');

    const r = await ok(
      f.sync(
        inc({
          files: ['docs/new.txt', 'docs/a.txt', 'docs/b.txt', 'links/to-docs'],
          dirs: ['docs/sub'],
          trees: ['docs/sub/deeper', 'olddir', 'newdir'],
        }),
      ),
    );
    await f.assertMirror({ ignore: ['keep', 'docs/mirror-sibling.txt'] });
    assert.equal(await readFile(join(f.dst, 'keep/mirror-only.txt'), 'utf8'), 'mine');
    assert.equal(await readFile(join(f.dst, 'keep/k.txt'), 'utf8'), 'kilo\n', 'unlisted change stays behind');
    assert.equal(await readFile(join(f.dst, 'docs/mirror-sibling.txt'), 'utf8'), 'mine too');
    assert.equal(await exists(join(f.dst, 'docs/b.txt')), false);
    assert.equal(await exists(join(f.dst, 'olddir')), false);
    // new.txt, a.txt, newdir/x.txt; b.txt, deeper/, deeper/d.txt, olddir/, olddir/x.txt
    assert.deepEqual(parseRsyncStats(r.stdout), { files: 3, bytes: 4 + 6 + 6, deleted: 5 });
  });

  it('applies a batch whose crowded directories are listed as dir/*, wildcard names included', async () => {
    const f = await fixture();
    const dirs = ['k0', 'k1', 'w[1]*', 'deep/er'];
    for (const d of dirs) for (let i = 0; i < 200; i++) await put(join(f.src, d, `f${i}`), `${d} ${i}\n`);
    await put(join(f.src, 'quiet/q'), 'q\n');
    await ok(f.sync(FULL));
    await put(join(f.dst, 'quiet/mirror-only'), 'mine'); // in no listed directory: stays
    await put(join(f.dst, 'k1/.f1.AbCdEf'), 'left by a killed rsync');
    const files: string[] = [];
    for (const d of dirs) {
      for (let i = 0; i < 180; i++) {
        await unlink(join(f.src, d, `f${i}`));
        files.push(`${d}/f${i}`);
      }
    }
    await put(join(f.src, 'w[1]*/new'), 'new\n');
    files.push('w[1]*/new');
    assert.ok(rules(inc({ files })).includes('/w\\[1]\\*/*'), 'the batch is collapsed');
    const r = await ok(f.sync(inc({ files })));
    await f.assertMirror({ ignore: ['quiet'] });
    assert.equal(await readFile(join(f.dst, 'quiet/mirror-only'), 'utf8'), 'mine');
    assert.deepEqual(parseRsyncStats(r.stdout), { files: 1, bytes: 4, deleted: 721 });
  });

  it('picks up a same-size rewrite within the same second (--modify-window=-1)', async () => {
    const f = await fixture();
    const file = join(f.src, 'd/f');
    await put(file, 'AAAA');
    await utimes(file, 1700000000, 1700000000.25);
    await ok(f.sync(FULL));
    await put(file, 'BBBB');
    await utimes(file, 1700000000, 1700000000.75);
    assert.equal((await lstat(join(f.dst, 'd/f'), { bigint: true })).mtimeNs, 1700000000_250000000n);

    // A tree in the batch: no --ignore-times, the window alone must do it.
    const changes = inc({ files: ['d/f'], trees: ['elsewhere'] });
    const { args, stdin } = buildRsyncArgs(f.spec(changes));
    assert.ok(!args.includes('--ignore-times'));
    // Control: with rsync's default whole-second window the rewrite is missed.
    await ok(runRsync(args.filter((a) => a !== '--modify-window=-1'), stdin));
    assert.equal(await readFile(join(f.dst, 'd/f'), 'utf8'), 'AAAA');
    await ok(runRsync(args, stdin));
    assert.equal(await readFile(join(f.dst, 'd/f'), 'utf8'), 'BBBB');
    await f.assertMirror();
  });

  it('picks up a same-size rewrite with an identical mtime in a file-only batch (--ignore-times)', async () => {
    const f = await fixture();
    const file = join(f.src, 'd/f');
    await put(file, 'AAAA');
    await utimes(file, 1700000000, 1700000000.5);
    await ok(f.sync(FULL));
    await put(file, 'BBBB');
    await utimes(file, 1700000000, 1700000000.5);
    const m = async (p: string) => (await lstat(p, { bigint: true })).mtimeNs;
    assert.equal(await m(file), await m(join(f.dst, 'd/f')), 'same size, same nanosecond');

    const { args, stdin } = buildRsyncArgs(f.spec(inc({ files: ['d/f'] })));
    assert.ok(args.includes('--ignore-times'));
    await ok(runRsync(args.filter((a) => a !== '--ignore-times'), stdin));
    assert.equal(await readFile(join(f.dst, 'd/f'), 'utf8'), 'AAAA', 'the quick check alone misses it');
    await ok(runRsync(args, stdin));
    assert.equal(await readFile(join(f.dst, 'd/f'), 'utf8'), 'BBBB');
    await f.assertMirror();
  });

  it('deletes a vanished directory with its contents even when listed as a file or dir entry', async () => {
    const f = await fixture();
    await put(join(f.src, 'x/a'), 'a');
    await put(join(f.src, 'x/sub/b'), 'b');
    await put(join(f.src, 'y/c'), 'c');
    await put(join(f.src, 'z/keep'), 'k');
    await ok(f.sync(FULL));
    await rm(join(f.src, 'x'), { recursive: true });
    await rm(join(f.src, 'y'), { recursive: true });
    const changes = inc({ files: ['x'], dirs: ['y'] });
    const { args, stdin } = buildRsyncArgs(f.spec(changes));
    // Control: with a plain catch-all exclude, rsync keeps them and still exits 0.
    const plain = args.map((a) => (a === '--filter=-p *' ? '--exclude=*' : a));
    const r = await runRsync(plain, stdin);
    assert.equal(r.code, 0);
    assert.match(r.stdout + r.stderr, /cannot delete non-empty directory: x/);
    assert.equal(await exists(join(f.dst, 'x/sub/b')), true);
    await ok(runRsync(args, stdin));
    await f.assertMirror();
  });

  it('follows type changes: file to dir, dir to file, dir to symlink, symlink to dir', async () => {
    const f = await fixture();
    await put(join(f.src, 'f2d'), 'was a file');
    await put(join(f.src, 'd2f/inner/deep'), 'was in a dir');
    await put(join(f.src, 'd2l/inner'), 'was in a dir');
    await symlink('/etc', join(f.src, 'l2d'));
    await ok(f.sync(FULL));
    await unlink(join(f.src, 'f2d'));
    await put(join(f.src, 'f2d/now/inside'), 'now in a dir');
    await rm(join(f.src, 'd2f'), { recursive: true });
    await put(join(f.src, 'd2f'), 'now a file');
    await rm(join(f.src, 'd2l'), { recursive: true });
    await symlink('f2d', join(f.src, 'd2l'));
    await unlink(join(f.src, 'l2d'));
    await put(join(f.src, 'l2d/x'), 'now a dir');
    // As a watcher reports them: each path deleted, then created as what it is now.
    const cs = new ChangeSet(100);
    cs.add('f2d', 'file');
    cs.add('f2d', 'dir');
    cs.add('f2d/now/inside', 'file');
    cs.add('d2f/inner/deep', 'file');
    cs.add('d2f', 'file');
    cs.add('d2l', 'dir');
    cs.add('d2l', 'file');
    cs.add('l2d', 'file');
    cs.add('l2d', 'dir');
    const changes = cs.toChanges('p');
    assert.deepEqual(changes.trees, ['d2f', 'd2l', 'f2d', 'l2d']);
    await ok(f.sync(changes));
    await f.assertMirror();
  });

  it('mirrors an ancestor that stopped being a directory before its own change arrived', async () => {
    const f = await fixture();
    await put(join(f.src, 'p/x'), 'x');
    await put(join(f.src, 'p/y'), 'y');
    await ok(f.sync(FULL));
    await rm(join(f.src, 'p'), { recursive: true });
    await put(join(f.src, 'q/x'), 'x, moved');
    await symlink('q', join(f.src, 'p'));
    // Only the stale change below it: the swap's own events come later.
    await ok(f.sync(inc({ files: ['p/x'] })));
    await f.assertMirror({ ignore: ['q'] });
    assert.ok((await lstat(join(f.dst, 'p'))).isSymbolicLink());
  });

  it('carries awkward names exactly, and wildcard look-alikes on the mirror survive', async () => {
    const f = await fixture();
    await mkdir(join(f.src, 'weird'));
    await mkdir(join(f.src, 'trees'));
    await ok(f.sync(FULL));
    const names = [
      'sp ace',
      ' lead',
      'trail ',
      'new\nline',
      'cr\rret',
      'tab\there',
      'ünïcødé 日本語 🙂',
      '-dash',
      '--delete',
      '-',
      '.hidden',
      '#hash',
      ';semi',
      '+ plus',
      '- minus',
      '!',
      'star*',
      'q?',
      '[ab]',
      'br]',
      'back\\slash',
      'x\\*',
      '***',
      'a[!b]c',
      '"quote\'',
      '$HOME',
    ];
    // What an unescaped or wrongly escaped rule would also match; mirror-only.
    const lookalikes = ['starX', 'qZ', 'a', 'b', 'x*', 'x\\X', 'zzz', 'axc', 'back\\\\slash'];
    const top = ['-top', '#top', '; top', '+ top', '- top', 'top*', '!'];
    const topLookalikes = ['topX'];
    const treeLookalikes = ['dX', 's', 'dZ', 'ef'];
    for (const n of names) await put(join(f.src, 'weird', n), `content of ${JSON.stringify(n)}\n`);
    for (const n of top) await put(join(f.src, n), `top ${n}\n`);
    for (const d of ['d***', '[set]', 'd?', 'e\\f']) await put(join(f.src, 'trees', d, 'inner file'), d);
    for (const n of lookalikes) await put(join(f.dst, 'weird', n), 'mirror only');
    for (const n of topLookalikes) await put(join(f.dst, n), 'mirror only');
    for (const d of treeLookalikes) await put(join(f.dst, 'trees', d, 'mirror only'), 'mirror only');
    await ok(
      f.sync(
        inc({
          files: [...names.map((n) => `weird/${n}`), ...top],
          trees: ['trees/d***', 'trees/[set]', 'trees/d?', 'trees/e\\f'],
        }),
      ),
    );
    const mirrorOnly = [
      ...lookalikes.map((n) => `weird/${n}`),
      ...topLookalikes,
      ...treeLookalikes.map((d) => `trees/${d}`),
    ];
    await f.assertMirror({ ignore: mirrorOnly });
    for (const p of mirrorOnly) assert.equal(await exists(join(f.dst, p)), true, `${JSON.stringify(p)} survives`);
  });

  it('handles 255-byte names and a 100-deep tree', async () => {
    const f = await fixture();
    const deep = Array.from({ length: 100 }, (_, i) => `l${i}`).join('/');
    await put(join(f.src, 'long', 'n'.repeat(255)), 'ascii');
    await put(join(f.src, 'long', '日'.repeat(85)), 'three bytes each');
    await put(join(f.src, 'long', 'd'.repeat(255), 'e'.repeat(255), 'inside'), 'nested');
    await put(join(f.src, 'deep', deep, 'leaf'), 'leaf v1');
    await ok(f.sync(inc({ trees: ['long', 'deep'] })));
    await f.assertMirror();

    await put(join(f.src, 'long', 'n'.repeat(255)), 'ASCII, longer');
    await put(join(f.src, 'long', 'd'.repeat(255), 'e'.repeat(255), 'inside'), 'NESTED, longer');
    await put(join(f.src, 'deep', deep, 'leaf'), 'leaf v2');
    // A temp file a killed rsync left next to the deep leaf.
    await put(join(f.dst, 'deep', deep, '.leaf.AbC123'), 'partial');
    const mid = deep.split('/').slice(0, 60).join('/');
    await put(join(f.src, 'deep', mid, 'new-at-60'), 'sixty');
    await ok(
      f.sync(
        inc({
          files: [`long/${'n'.repeat(255)}`, `deep/${deep}/leaf`, `deep/${mid}/new-at-60`],
          trees: [`long/${'d'.repeat(255)}/${'e'.repeat(255)}`],
        }),
      ),
    );
    await f.assertMirror();
    await rm(join(f.src, 'deep', mid), { recursive: true });
    await ok(f.sync(inc({ files: [`deep/${mid}`] })));
    await f.assertMirror();
  });

  it('syncs a path too long for its own rules through a wider tree', async () => {
    const f = await fixture();
    const deep = Array.from({ length: 11 }, () => '*'.repeat(200)).join('/');
    await put(join(f.src, deep, 'f'), 'v1');
    await ok(f.sync(FULL));
    await put(join(f.src, deep, 'f'), 'v2, longer');
    await put(join(f.src, deep, 'g'), 'new');
    const r = await ok(f.sync(inc({ files: [`${deep}/f`, `${deep}/g`] })));
    assert.doesNotMatch(r.stderr, /over-long/);
    await f.assertMirror();
  });

  it('never sends nor deletes excluded paths, even in a full sync or when listed', async () => {
    const f = await fixture();
    await populate(f.src);
    await put(join(f.src, 'localhost/origin-only'), 'origin');
    await put(join(f.src, 'docs/x.tmp'), 'tmp');
    await put(join(f.dst, 'localhost/mirror-only'), 'mirror');
    await put(join(f.dst, 'docs/y.tmp'), 'mirror tmp');
    const excludes = ['/localhost/', '*.tmp'];
    await ok(f.sync(FULL, { excludes }));
    const ignore = ['localhost', 'docs/x.tmp', 'docs/y.tmp'];
    await f.assertMirror({ ignore });
    const check = async () => {
      assert.deepEqual(await readdir(join(f.dst, 'localhost')), ['mirror-only']);
      assert.equal(await exists(join(f.dst, 'docs/x.tmp')), false);
      assert.equal(await exists(join(f.dst, 'docs/y.tmp')), true);
    };
    await check();
    await ok(f.sync(inc({ trees: ['localhost', 'docs'], files: ['docs/y.tmp'] }), { excludes }));
    await f.assertMirror({ ignore });
    await check();
    await rm(join(f.src, 'localhost'), { recursive: true });
    await ok(f.sync(FULL, { excludes }));
    await check();
  });

  it('removes a temp file left by an rsync killed with SIGKILL on the next run of its directory', async () => {
    const f = await fixture();
    await put(join(f.src, 'data/big'), Buffer.alloc(4 << 20, 1));
    await put(join(f.src, 'data/small'), 'small');
    await ok(f.sync(FULL));
    await put(join(f.src, 'data/big'), Buffer.alloc(4 << 20, 2));
    const { args, stdin } = buildRsyncArgs(f.spec(inc({ files: ['data/big'] }), { bwlimit: 500 }));
    let pid = 0;
    const killed = runRsync(args, stdin, (p) => (pid = p));
    const temp = async () => (await readdir(join(f.dst, 'data'))).filter((n) => n.startsWith('.big.'));
    const deadline = Date.now() + 20_000;
    while ((await temp()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(pid > 0);
    process.kill(-pid, 'SIGKILL'); // its process group: rsync runs as three processes
    const r = await killed;
    assert.equal(r.signal, 'SIGKILL');
    assert.deepEqual(classifyRsyncExit(r.code, r.signal), { kind: 'retry', meaning: 'killed by signal SIGKILL' });
    assert.equal((await temp()).length, 1, 'rsync left its temp file');
    await ok(f.sync(inc({ files: ['data/big'] })));
    assert.deepEqual(await temp(), []);
    await f.assertMirror();
  });

  it('removes leftover temp files under a tree and in a full sync', async () => {
    const f = await fixture();
    await put(join(f.src, 't/x'), 'x');
    await put(join(f.src, 'u/y'), 'y');
    await ok(f.sync(FULL));
    await put(join(f.dst, 't/.x.Q1w2E3'), 'partial');
    await ok(f.sync(inc({ trees: ['t'] })));
    await put(join(f.dst, 'u/.y.Q1w2E3'), 'partial');
    await ok(f.sync(FULL));
    await f.assertMirror();
  });

  it('stops at --max-delete and reports it as fatal for the batch', async () => {
    const f = await fixture();
    await mkdir(join(f.src, 'd'));
    for (const n of ['1', '2', '3', '4']) await put(join(f.dst, 'd', n), n);
    const r = await f.sync(inc({ trees: ['d'] }), { maxDelete: 2 });
    assert.equal(r.code, 25);
    assert.equal(classifyRsyncExit(r.code, r.signal).kind, 'fatal');
    assert.equal((await readdir(join(f.dst, 'd'))).length, 2);
  });

  it('changes nothing in a dry run', async () => {
    const f = await fixture();
    await populate(f.src);
    await ok(f.sync(FULL));
    await put(join(f.src, 'docs/a.txt'), 'changed');
    await rm(join(f.src, 'docs/sub'), { recursive: true });
    const before = await snapshotTree(f.dst);
    await ok(f.sync(inc({ files: ['docs/a.txt'], trees: ['docs/sub'] }), { dryRun: true }));
    await ok(f.sync(FULL, { dryRun: true }));
    assertTreesEqual(await snapshotTree(f.dst), before);
  });

  it('mirrors without owner and group when not root', async () => {
    const f = await fixture();
    await populate(f.src);
    await ok(f.sync(FULL, { isRoot: false }));
    await put(join(f.src, 'docs/a.txt'), 'changed');
    await ok(f.sync(inc({ files: ['docs/a.txt'] }), { isRoot: false }));
    await f.assertMirror();
  });
});

// --- what mirrors refuse from the origin (real rsync) -----------------------

/** An origin holding what a hostile master would plant, and the ordinary modes that must survive. */
async function plantHostile(src: string): Promise<void> {
  await put(join(src, 'bin/suid-root'), '#!/bin/sh\n', 0o4755);
  await put(join(src, 'bin/sgid'), '#!/bin/sh\n', 0o2750);
  await put(join(src, 'bin/both'), '#!/bin/sh\n', 0o6711);
  await put(join(src, 'plain/f640'), 'private\n', 0o640);
  await put(join(src, 'plain/f755'), '#!/bin/sh\n', 0o755);
  await put(join(src, 'plain/f1777'), 'sticky\n', 0o1777);
  await mkdir(join(src, 'shared'));
  await chmod(join(src, 'shared'), 0o2775);
  await mkdir(join(src, 'dev'));
  assert.equal(spawnSync('mkfifo', [join(src, 'dev/fifo')]).status, 0, 'mkfifo');
  if (IS_ROOT) {
    // 7, 0: /dev/loop0's numbers, world-writable as in the audit.
    assert.equal(spawnSync('mknod', ['-m', '666', join(src, 'dev/disk'), 'b', '7', '0']).status, 0, 'mknod b');
    assert.equal(spawnSync('mknod', ['-m', '666', join(src, 'dev/mem'), 'c', '1', '1']).status, 0, 'mknod c');
  }
}

const SPECIAL = ['dev/fifo', 'dev/disk', 'dev/mem'];

async function modeOf(p: string): Promise<number> {
  return (await lstat(p)).mode & 0o7777;
}

/** The refused entries are absent and the setuid/setgid bits gone; everything else as on the origin. */
async function assertHostileRefused(f: Fixture): Promise<void> {
  for (const rel of SPECIAL) assert.equal(await exists(join(f.dst, rel)), false, `${rel} must not arrive`);
  assert.equal(await modeOf(join(f.dst, 'bin/suid-root')), 0o755);
  assert.equal(await modeOf(join(f.dst, 'bin/sgid')), 0o750);
  assert.equal(await modeOf(join(f.dst, 'bin/both')), 0o711);
  assert.equal(await modeOf(join(f.dst, 'plain/f640')), 0o640);
  assert.equal(await modeOf(join(f.dst, 'plain/f755')), 0o755);
  assert.equal(await modeOf(join(f.dst, 'plain/f1777')), 0o1777);
  assert.equal(await modeOf(join(f.dst, 'shared')), 0o775);
  await f.assertMirror({ ignore: SPECIAL, skip: (rel) => (rel.startsWith('bin/') || rel === 'shared' ? ['mode'] : undefined) });
}

const ALL_IN = { devices: true, specials: true, setuid: true };

describe('what mirrors refuse from the origin (real rsync)', () => {
  it('skips devices and specials and strips setuid/setgid bits by default, full and incremental', async () => {
    const f = await fixture();
    await plantHostile(f.src);
    const full = await f.sync(FULL);
    assert.equal(full.code, 0, full.stderr);
    assert.match(full.stdout, /skipping non-regular file "dev\/fifo"/);
    await assertHostileRefused(f);

    const g = await fixture();
    await plantHostile(g.src);
    const listed = inc({ files: ['bin/suid-root', 'bin/sgid', 'bin/both', 'plain/f640', 'plain/f755', 'plain/f1777', ...SPECIAL], dirs: ['shared'] });
    assert.equal((await g.sync(listed)).code, 0);
    await assertHostileRefused(g);
  });

  it('clears setuid bits that an earlier run left on the mirror', async () => {
    const f = await fixture();
    await plantHostile(f.src);
    await ok(f.sync(FULL, { optIns: ALL_IN }));
    assert.equal(await modeOf(join(f.dst, 'bin/suid-root')), 0o4755, 'the old behaviour, for the control');
    await ok(f.sync(inc({ files: ['bin/suid-root'] })));
    assert.equal(await modeOf(join(f.dst, 'bin/suid-root')), 0o755);
  });

  it('carries everything as it is for a path that opts in', async () => {
    const f = await fixture();
    await plantHostile(f.src);
    await ok(f.sync(FULL, { optIns: ALL_IN }));
    await f.assertMirror();
    if (IS_ROOT) assert.ok((await lstat(join(f.dst, 'dev/disk'))).isBlockDevice());
    // Each opt-in alone takes only its own kind.
    const s = await fixture();
    await plantHostile(s.src);
    assert.equal((await s.sync(FULL, { optIns: { specials: true } })).code, 0);
    assert.ok((await lstat(join(s.dst, 'dev/fifo'))).isFIFO());
    assert.equal(await exists(join(s.dst, 'dev/disk')), false);
    assert.equal(await modeOf(join(s.dst, 'bin/suid-root')), 0o755);
  });

  it('keeps file capabilities off the mirror even when extra adds -X', async (t) => {
    if (!IS_ROOT || spawnSync('setcap', ['-v', 'cap_setuid+ep', '/dev/null']).error) {
      t.skip('needs root and setcap (libcap2-bin)');
      return;
    }
    const caps = (p: string) => spawnSync('getcap', [p], { encoding: 'utf8' }).stdout.trim();
    const f = await fixture();
    await put(join(f.src, 'bin/capped'), '#!/bin/sh\n', 0o755);
    assert.equal(spawnSync('setcap', ['cap_setuid+ep', join(f.src, 'bin/capped')]).status, 0, 'setcap');
    await ok(f.sync(FULL, { extra: ['-X'] }));
    assert.equal(caps(join(f.dst, 'bin/capped')), '', 'no capability arrives');
    assert.match(caps(join(f.src, 'bin/capped')), /cap_setuid/, 'the control: the origin has one');
    const g = await fixture();
    await put(join(g.src, 'bin/capped'), '#!/bin/sh\n', 0o755);
    spawnSync('setcap', ['cap_setuid+ep', join(g.src, 'bin/capped')]);
    await ok(g.sync(FULL, { extra: ['-X'], optIns: { setuid: true } }));
    assert.match(caps(join(g.dst, 'bin/capped')), /cap_setuid/, 'kept for a path that opts in');
  });

  it('is not undone by -a in extra', async () => {
    const f = await fixture();
    await plantHostile(f.src);
    assert.equal((await f.sync(FULL, { extra: ['-a'] })).code, 0);
    await assertHostileRefused(f);
  });

  it('is enforced by the pulling side against a stock rsync daemon serving them', async (t) => {
    const f = await fixture();
    await plantHostile(f.src);
    const port = await findFreePort();
    const conf = join(f.src, '..', 'rsyncd.conf');
    await writeFile(conf, `use chroot = no\nuid = ${process.getuid?.() ?? 0}\ngid = ${process.getgid?.() ?? 0}\n[o]\npath = ${f.src}\nread only = yes\n`);
    const daemon = spawn(RSYNC, ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1'], { stdio: 'ignore' });
    t.after(() => daemon.kill());
    let r: RunResult | null = null;
    for (let i = 0; i < 50; i++) {
      r = await f.sync(FULL, { source: undefined, url: `rsync://127.0.0.1:${port}/o/` });
      if (r.code !== 10) break; // 10: the daemon is not listening yet
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(r?.code, 0, r?.stderr);
    await assertHostileRefused(f);
  });
});
