// The daemon's excludes hold against symlinks (issue 10, item 2): an agent's
// own credentials get nothing an exclude withholds, whatever path, option or
// symlink it names. Against the real rsync daemon on 127.0.0.1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeCredentials, type RsyncCredential } from '../src/master/rsyncd/credentials.js';
import { RsyncDaemon } from '../src/master/rsyncd/daemon.js';
import { buildRsyncArgs } from '../src/rsync/filter.js';
import { rsync } from '../harness/security.js';
import { readAllFiles } from '../harness/tree.js';
import { findFreePort } from '../harness/ports.js';

const RSYNC = process.env.INOSYNC_TEST_RSYNC ?? '/usr/bin/rsync';
const HOST = '127.0.0.1';
/** Contents no pull may ever return: each lives only under an excluded name. */
const SECRETS = ['s3cret-key', 'localhost-only', 'swap-file'];




describe('daemon excludes and symlinks (real rsync)', () => {
  let root: string;
  let port: number;
  let cred: RsyncCredential;
  let daemon: RsyncDaemon;
  let n = 0;

  const url = (rest: string): string => `rsync://${cred.user}@${HOST}:${port}/${rest}`;
  const dest = (): string => {
    const d = join(root, 'dest', String(n++));
    mkdirSync(d, { recursive: true });
    return d;
  };
  function assertNoLeak(d: string, what: string): void {
    const got = readAllFiles(d);
    for (const s of SECRETS) assert.ok(!got.includes(s), `${what} leaked ${s}`);
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'inosync-symlinks-'));
    const src = join(root, 'www');
    const files: Record<string, string> = {
      'index.html': 'public page\n',
      'secret/key.txt': 's3cret-key\n',
      // A file the daemon would read as rules: what they hide would tell its content.
      'secret/rules': '- index.html\n',
      'localhost/status.txt': 'localhost-only\n',
      'pub/page.html': 'public too\n',
      'pub/.page.swp': 'swap-file\n',
    };
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(dirname(join(src, rel)), { recursive: true });
      writeFileSync(join(src, rel), content);
    }
    symlinkSync('secret', join(src, 'alias')); // to an excluded directory
    symlinkSync('.', join(src, 'self')); // to the module root: defeats anchored excludes by name
    symlinkSync('..', join(src, 'pub/up')); // to an ancestor
    symlinkSync('.page.swp', join(src, 'pub/page.bak')); // to an excluded file
    port = await findFreePort(HOST);
    const creds = makeCredentials(['m1']);
    cred = creds.get('m1')!;
    daemon = new RsyncDaemon({
      binary: RSYNC,
      host: HOST,
      port,
      modules: [{ name: 'www', path: src, excludes: ['secret', '/localhost/', '*.swp'] }],
      credentials: creds,
      timing: { stopTimeoutMs: 3_000 },
    });
    await daemon.start();
  });

  after(async () => {
    await daemon?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('a path through a symlink names nothing the excludes withhold', async () => {
    const paths = [
      'www/alias/key.txt',
      'www/alias/',
      'www/self/secret/key.txt',
      'www/self/localhost/status.txt',
      'www/self/localhost/',
      'www/self/',
      'www/pub/up/secret/key.txt',
      'www/pub/up/localhost/status.txt',
      'www/pub/up/',
      'www/pub/page.bak',
    ];
    for (const p of paths) {
      // -s sends the paths after the options, -R keeps them whole; -L/-k are refused anyway.
      const variants = p.includes('alias') ? [['-a'], ['-as'], ['-aR'], ['-aL'], ['-ak']] : [['-a'], ['-as']];
      for (const opts of variants) {
        const d = dest();
        const r = await rsync([...opts, url(p), `${d}/`], cred.password);
        assertNoLeak(d, `${opts.join(' ')} ${p}`);
        assert.notEqual(r.code, 0, `${opts.join(' ')} ${p} is refused`);
      }
    }
  });

  test('two paths in one request, or one hidden in a space, are refused', async () => {
    const d = dest();
    const two = await rsync(['-a', url('www/'), url('www/alias/key.txt'), `${d}/`], cred.password);
    assert.notEqual(two.code, 0);
    const spaced = await rsync(['-a', '--old-args', `${url('www/')} www/alias/key.txt`, `${d}/`], cred.password);
    assert.notEqual(spaced.code, 0);
    assertNoLeak(d, 'several paths');
  });

  test('--files-from, through a symlink or not, is refused', async () => {
    for (const list of ['alias/key.txt\n', 'self/localhost/status.txt\n', 'pub/up/secret/key.txt\n', 'index.html\n']) {
      const d = dest();
      const r = await rsync(['-a', '--files-from=-', url('www/'), `${d}/`], cred.password, list);
      assert.notEqual(r.code, 0, list);
      assert.match(r.stderr, /refuse/, list);
      assertNoLeak(d, `--files-from ${list}`);
    }
  });

  test('options that make the daemon read a file by a name the client chooses are refused', async () => {
    for (const opt of ['--files-from=/alias/key.txt', '--exclude-from=/alias/rules', '--include-from=/alias/rules', '--filter=merge /alias/rules', '--filter=. /self/secret/rules', '--write-batch=/pub/batch']) {
      const d = dest();
      const r = await rsync(['-a', `-M${opt}`, url('www/'), `${d}/`], cred.password);
      assert.notEqual(r.code, 0, opt);
      assert.match(r.stderr, /refuse/, opt);
      assert.ok(!existsSync(join(d, 'pub')) || existsSync(join(d, 'index.html')), `${opt}: secret/rules hid index.html`);
      assertNoLeak(d, opt);
    }
  });

  test('the module root arrives whole: excluded names absent, every symlink a symlink', async () => {
    for (const opts of [['-a'], ['-aR'], ['-as']]) {
      const d = dest();
      const r = await rsync([...opts, url('www/'), `${d}/`], cred.password);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(join(d, 'index.html'), 'utf8'), 'public page\n');
      assert.equal(readFileSync(join(d, 'pub/page.html'), 'utf8'), 'public too\n');
      for (const [link, target] of [['alias', 'secret'], ['self', '.'], ['pub/up', '..'], ['pub/page.bak', '.page.swp']]) {
        assert.ok(lstatSync(join(d, link!)).isSymbolicLink(), `${link} is a symlink`);
        assert.equal(readlinkSync(join(d, link!)), target);
      }
      for (const hidden of ['secret', 'localhost', 'pub/.page.swp']) assert.ok(!existsSync(join(d, hidden)), hidden);
      assertNoLeak(d, `${opts.join(' ')} of the root`);
    }
  });

  test("the agent's own pull works, and a batch naming paths through symlinks gets nothing withheld", async () => {
    const d = dest();
    const { args, stdin } = buildRsyncArgs({
      binary: RSYNC,
      url: url('www/'),
      target: d,
      excludes: ['secret', '/localhost/', '*.swp'],
      changes: { name: 'www', full: false, files: ['index.html', 'alias/key.txt', 'self/localhost/status.txt', 'pub/page.bak'], dirs: ['pub'], trees: ['self', 'pub/up'] },
      bwlimit: 0,
      timeout: 30,
      extra: [],
      maxDelete: 0,
      isRoot: process.getuid?.() === 0,
    });
    const r = await rsync(args, cred.password, stdin ?? '');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(d, 'index.html'), 'utf8'), 'public page\n');
    assert.equal(readlinkSync(join(d, 'self')), '.');
    assert.equal(readlinkSync(join(d, 'pub/page.bak')), '.page.swp');
    assertNoLeak(d, "the agent's pull");

    const full = dest();
    const f = buildRsyncArgs({
      binary: RSYNC, url: url('www/'), target: full, excludes: ['secret', '/localhost/', '*.swp'],
      changes: { name: 'www', full: true, files: [], dirs: [], trees: [] }, bwlimit: 0, timeout: 30, extra: [], maxDelete: 0, isRoot: process.getuid?.() === 0,
    });
    const rf = await rsync(f.args, cred.password);
    assert.equal(rf.code, 0, rf.stderr);
    assert.equal(readFileSync(join(full, 'pub/page.html'), 'utf8'), 'public too\n');
    assertNoLeak(full, "the agent's full sync");
  });
});
