// The master's rsync daemon, against the real rsync binary on 127.0.0.1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { makeCredentials, type RsyncCredential } from '../src/master/rsyncd/credentials.js';
import { REFUSED_OPTIONS, renderRsyncdConf, type RsyncdModule, type RsyncdSpec } from '../src/rsync/daemon-conf.js';
import { RsyncDaemon, type RsyncDaemonExit, type RsyncDaemonOptions } from '../src/master/rsyncd/daemon.js';
import { RsyncFront } from '../src/master/rsyncd/front.js';
import { readAllFiles } from '../harness/tree.js';
import { findFreePort } from '../harness/ports.js';
import { waitFor } from '../harness/wait.js';

const RSYNC = process.env.INOSYNC_TEST_RSYNC ?? '/usr/bin/rsync';
const HOST = '127.0.0.1';
const isRoot = process.getuid?.() === 0;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the rsync client; the password travels only in RSYNC_PASSWORD. */
function rsync(args: string[], opts: { password?: string; input?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    if (opts.password !== undefined) env.RSYNC_PASSWORD = opts.password;
    const child = spawn(RSYNC, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

function url(port: number, cred: RsyncCredential | null, rest: string, host = HOST): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `rsync://${cred === null ? '' : `${cred.user}@`}${h}:${port}/${rest}`;
}

interface Proc {
  pid: number;
  ppid: number;
  pgrp: number;
  state: string;
}

/** Live (non-zombie) processes, read straight from /proc. */
function liveProcesses(): Proc[] {
  const out: Proc[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const p = { pid: Number(e), state: f[0]!, ppid: Number(f[1]), pgrp: Number(f[2]) };
    if (p.state !== 'Z' && p.state !== 'X') out.push(p);
  }
  return out;
}

function related(pid: number): Proc[] {
  return liveProcesses().filter((p) => p.pid === pid || p.ppid === pid || p.pgrp === pid);
}

function configPathOf(pid: number): string {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const arg = argv.find((a) => a.startsWith('--config='));
  assert.ok(arg, `daemon ${pid} has no --config= argument: ${argv.join(' ')}`);
  return arg.slice('--config='.length);
}

function hasIPv6Loopback(): boolean {
  try {
    return readFileSync('/proc/net/if_inet6', 'utf8').includes('00000000000000000000000000000001');
  } catch {
    return false;
  }
}

describe('renderRsyncdConf', () => {
  const spec: RsyncdSpec = {
    modules: [{ name: 'www', path: '/srv/www', excludes: ['/localhost/secret', 'cache', '*.tmp', 'logs/', 'back\\slash', 'x[\\]y', '#hash', '- old style'] }],
    users: [
      { user: 'inosync-a-1', password: 'pw-a' },
      { user: 'inosync-b-1', password: 'pw-b' },
    ],
    runAs: { uid: 1000, gid: 1001 },
    dir: '/run/inosync-x',
    pidFile: '/run/inosync-x/rsyncd.pid',
  };

  test('renders a read-only, unlisted, authenticated module per path', () => {
    const { conf, secrets, excludeFiles } = renderRsyncdConf(spec);
    const lines = conf.split('\n');
    for (const want of [
      'pid file = /run/inosync-x/rsyncd.pid',
      'log file = /run/inosync-x/rsyncd.log',
      'reverse lookup = no',
      'socket options = TCP_NODELAY',
      '[www]',
      'path = /srv/www/',
      'read only = yes',
      'write only = no',
      'list = no',
      'use chroot = yes',
      'munge symlinks = no',
      'uid = 1000',
      'gid = 1001',
      'auth users = inosync-a-1:ro inosync-b-1:ro',
      'secrets file = /run/inosync-x/secrets',
      'strict modes = yes',
      'exclude from = /run/inosync-x/www.exclude',
      'lock file = /run/inosync-x/www.lock',
      'timeout = 600',
      'transfer logging = no',
      `refuse options = ${REFUSED_OPTIONS.join(' ')}`,
      'pre-xfer exec = /run/inosync-x/only-module-root',
    ]) {
      assert.ok(lines.includes(want), `missing line ${JSON.stringify(want)} in:\n${conf}`);
    }
    assert.ok(!lines.some((l) => /^\s*hosts (allow|deny)/.test(l)), 'authentication is the gate, not addresses');
    assert.ok(!conf.includes('pw-a') && !conf.includes('pw-b'), 'passwords belong in the secrets file only');
    assert.equal(secrets, 'inosync-a-1:pw-a\ninosync-b-1:pw-b\n');
    assert.equal(
      excludeFiles.get('www'),
      [
        '- /localhost/secret',
        '- /localhost/secret/***',
        '- cache',
        '- cache/***',
        '- *.tmp',
        '- *.tmp/***',
        '- logs/',
        '- logs/***',
        // A backslash is literal only without wildcards: escaped once "/***" adds some.
        '- back\\slash',
        '- back\\\\slash/***',
        '- x[\\]y',
        '- x[\\]y/***',
        // "- " keeps a leading "#" from reading as a comment.
        '- #hash',
        '- #hash/***',
        '- old style',
        '- old style/***',
        '',
      ].join('\n'),
    );
  });

  test('without root: no chroot, no user switch', () => {
    const { conf } = renderRsyncdConf({ ...spec, privileged: false });
    assert.match(conf, /^use chroot = no$/m);
    assert.doesNotMatch(conf, /^(uid|gid) =/m);
  });

  test('a path with "%" is kept as is, unless rsyncd would expand part of it', () => {
    const { conf } = renderRsyncdConf({ ...spec, modules: [{ name: 'p', path: '/srv/100% %done%', excludes: [] }] });
    assert.match(conf, /^path = \/srv\/100% %done%\/$/m);
    for (const path of ['/srv/%HOME%', '/srv/a%RSYNC_USER_NAME%b', '/srv/%%PATH%%']) {
      assert.throws(() => renderRsyncdConf({ ...spec, modules: [{ name: 'p', path, excludes: [] }] }), /environment variable/);
    }
    assert.throws(() => renderRsyncdConf({ ...spec, dir: '/run/%TZ%' }), /environment variable/);
  });

  const refused: [string, Partial<RsyncdSpec>][] = [
    ['module name with a newline and a section', { modules: [{ name: 'a]\n[evil', path: '/srv', excludes: [] }] }],
    ['module name with a space', { modules: [{ name: 'a b', path: '/srv', excludes: [] }] }],
    ['module name "global"', { modules: [{ name: 'global', path: '/srv', excludes: [] }] }],
    ['module name ".."', { modules: [{ name: '..', path: '/srv', excludes: [] }] }],
    ['empty module name', { modules: [{ name: '', path: '/srv', excludes: [] }] }],
    ['duplicate module', { modules: [{ name: 'a', path: '/srv', excludes: [] }, { name: 'a', path: '/srv2', excludes: [] }] }],
    ['path with a newline', { modules: [{ name: 'a', path: '/srv\nread only = no', excludes: [] }] }],
    ['path with a carriage return', { modules: [{ name: 'a', path: '/srv\r', excludes: [] }] }],
    ['relative path', { modules: [{ name: 'a', path: 'srv', excludes: [] }] }],
    ['path with ..', { modules: [{ name: 'a', path: '/srv/../etc', excludes: [] }] }],
    ['path with a chroot divider', { modules: [{ name: 'a', path: '/srv/./www', excludes: [] }] }],
    ['exclude with a newline', { modules: [{ name: 'a', path: '/srv', excludes: ['x\n+ *'] }] }],
    ['exclude that is an include', { modules: [{ name: 'a', path: '/srv', excludes: ['+ secret'] }] }],
    ['exclude that clears the list', { modules: [{ name: 'a', path: '/srv', excludes: ['!'] }] }],
    ['empty exclude', { modules: [{ name: 'a', path: '/srv', excludes: [''] }] }],
    ['no users (would be anonymous)', { users: [] }],
    ['user with a space', { users: [{ user: 'a b', password: 'x' }] }],
    ['user with a comma', { users: [{ user: 'a,b', password: 'x' }] }],
    ['user naming a group', { users: [{ user: '@wheel', password: 'x' }] }],
    ['user with an option', { users: [{ user: 'a:rw', password: 'x' }] }],
    ['password with a newline', { users: [{ user: 'a', password: 'x\nb:y' }] }],
    ['empty password', { users: [{ user: 'a', password: '' }] }],
    ['runtime dir with a newline', { dir: '/run/x\n[evil]' }],
    ['negative uid', { runAs: { uid: -1, gid: 0 } }],
  ];
  for (const [what, patch] of refused) {
    test(`refuses ${what}`, () => {
      assert.throws(() => renderRsyncdConf({ ...spec, ...patch }), /rsyncd: /);
    });
  }
});

describe('makeCredentials', () => {
  test('one user per node with a 256-bit base64url password, fresh every call', () => {
    const a = makeCredentials(['web1', 'web2']);
    const b = makeCredentials(['web1', 'web2']);
    assert.deepEqual([...a.keys()], ['web1', 'web2']);
    const users = new Set<string>();
    for (const m of [a, b]) {
      for (const [node, c] of m) {
        assert.match(c.user, new RegExp(`^inosync-${node}-[0-9a-f]{8}$`));
        assert.match(c.password, /^[A-Za-z0-9_-]{43}$/);
        users.add(c.user);
      }
    }
    assert.equal(users.size, 4, 'users differ between runs');
    assert.notEqual(a.get('web1')!.password, b.get('web1')!.password);
    assert.notEqual(a.get('web1')!.password, a.get('web2')!.password);
  });

  test('refuses node names that cannot be rsync users, and duplicates', () => {
    assert.throws(() => makeCredentials(['a b']), /cannot become an rsync user/);
    assert.throws(() => makeCredentials(['a:rw']), /cannot become an rsync user/);
    assert.throws(() => makeCredentials(['a', 'a']), /listed twice/);
  });
});

describe('RsyncDaemon (real rsync)', () => {
  let root: string;
  let src: string;
  let port: number;
  let creds: Map<string, RsyncCredential>;
  let web1: RsyncCredential;
  let daemon: RsyncDaemon;
  const logs: string[] = [];
  const cleanup: RsyncDaemon[] = [];
  let modules: RsyncdModule[];

  function dest(name: string): string {
    const d = join(root, 'dest', name);
    mkdirSync(d, { recursive: true });
    return d;
  }

  function newDaemon(opts: Partial<RsyncDaemonOptions> = {}): RsyncDaemon {
    const d = new RsyncDaemon({
      binary: RSYNC,
      host: HOST,
      port,
      modules,
      credentials: creds,
      timing: { stopTimeoutMs: 3_000 },
      ...opts,
    });
    cleanup.push(d);
    return d;
  }

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'inosync-rsyncd-test-'));
    src = join(root, 'src');
    const files: Record<string, string> = {
      'hello.txt': 'hello\n',
      'private.txt': 'private\n',
      'localhost/secret': 's3cret\n',
      'localhost/public': 'public\n',
      'cache/x': 'cached\n',
      'deep/cache/y': 'cached too\n',
      'deep/keep.txt': 'keep\n',
      'junk.tmp': 'junk\n',
      '#hash': 'a name rsync filter files would read as a comment\n',
      'back\\slash/f': 'backslashed\n',
      'logs/today': 'log line\n',
    };
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(dirname(join(src, rel)), { recursive: true });
      writeFileSync(join(src, rel), content);
    }
    chmodSync(join(src, 'private.txt'), 0o600);
    mkdirSync(join(src, 'links'));
    symlinkSync('/etc/hostname', join(src, 'links/abs'));
    symlinkSync('/nonexistent/nowhere', join(src, 'links/dangling'));
    symlinkSync('../../outside/file', join(src, 'links/outside'));
    symlinkSync('/etc', join(src, 'links/dir'));
    mkdirSync(join(root, 'outside'));
    writeFileSync(join(root, 'outside/file'), 'outside the module\n');
    const odd = join(root, 'odd 100% %done% dir');
    mkdirSync(odd);
    writeFileSync(join(odd, 'f'), 'odd\n');

    modules = [
      { name: 'data', path: src, excludes: ['/localhost/secret', 'cache', '*.tmp', '#hash', 'back\\slash', 'logs/'] },
      { name: 'odd', path: odd, excludes: [] },
    ];
    port = await findFreePort(HOST);
    creds = makeCredentials(['web1', 'web2']);
    web1 = creds.get('web1')!;
    daemon = newDaemon();
    daemon.on('log', (l: string) => logs.push(l));
    await daemon.start();
  });

  after(async () => {
    for (const d of cleanup) await d.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('start() resolves with the daemon accepting connections', () => {
    const st = daemon.status();
    assert.equal(st.running, true);
    assert.equal(typeof st.pid, 'number');
    assert.equal(st.restarts, 0);
    assert.equal(st.lastError, null);
  });

  test('the runtime dir is private and holds no password in rsyncd.conf', () => {
    const conf = configPathOf(daemon.status().pid!);
    const dir = dirname(conf);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    for (const f of readdirSync(dir)) {
      if (f.endsWith('.lock')) continue;
      // The pre-xfer script is run by the daemon: its owner may execute it.
      const want = f === 'only-module-root' ? 0o700 : 0o600;
      assert.equal(statSync(join(dir, f)).mode & 0o777, want, `${f} must be ${want.toString(8)}`);
    }
    const text = readFileSync(conf, 'utf8');
    for (const c of creds.values()) assert.ok(!text.includes(c.password));
    assert.match(readFileSync(join(dir, 'secrets'), 'utf8'), new RegExp(`^${web1.user}:`, 'm'));
  });

  test('an authorized user pulls the module, including a 0600 root-owned file', async (t) => {
    if (!isRoot) {
      t.skip('needs root: the daemon must start as root to serve as runAs');
      return;
    }
    const d = dest('full');
    const r = await rsync(['-a', url(port, web1, 'data/'), `${d}/`], { password: web1.password });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(d, 'hello.txt'), 'utf8'), 'hello\n');
    assert.equal(readFileSync(join(d, 'private.txt'), 'utf8'), 'private\n');
    assert.equal(statSync(join(src, 'private.txt')).uid, 0);
    assert.equal(readFileSync(join(d, 'localhost/public'), 'utf8'), 'public\n');
    assert.equal(readFileSync(join(d, 'deep/keep.txt'), 'utf8'), 'keep\n');
    for (const hidden of ['localhost/secret', 'cache', 'deep/cache', 'junk.tmp', '#hash', 'back\\slash', 'logs']) {
      assert.ok(!existsSync(join(d, hidden)), `${hidden} is excluded by the daemon`);
    }
  });

  test('every node has its own working user', async () => {
    const web2 = creds.get('web2')!;
    const r = await rsync(['-a', '--include=/hello.txt', '--exclude=*', url(port, web2, 'data/'), `${dest('web2')}/`], { password: web2.password });
    assert.equal(r.code, 0, r.stderr);
  });

  test('a path with "%" in it is served as written', async () => {
    const r = await rsync(['-a', url(port, web1, 'odd/'), `${dest('odd')}/`], { password: web1.password });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(root, 'dest/odd/f'), 'utf8'), 'odd\n');
  });

  test('anonymous listing shows no module', async () => {
    const r = await rsync([url(port, null, '')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '');
  });

  test('anonymous, wrong-password and unknown-user pulls fail', async () => {
    const d = dest('denied');
    const anon = await rsync(['-a', url(port, null, 'data/'), `${d}/`]);
    assert.equal(anon.code, 5, anon.stderr);
    assert.match(anon.stderr, /auth failed/);
    const wrong = await rsync(['-a', url(port, web1, 'data/'), `${d}/`], { password: 'not-the-password' });
    assert.equal(wrong.code, 5, wrong.stderr);
    const unknown = await rsync(['-a', url(port, { user: 'inosync-web1-00000000', password: web1.password }, 'data/'), `${d}/`], {
      password: web1.password,
    });
    assert.equal(unknown.code, 5, unknown.stderr);
    assert.deepEqual(readdirSync(d), []);
  });

  test('excluded paths cannot be pulled, even when asked for explicitly', async () => {
    const pw = { password: web1.password };
    const attempts: string[][] = [
      [url(port, web1, 'data/localhost/secret')],
      [url(port, web1, 'data/localhost/')],
      [url(port, web1, 'data/cache/x')],
      [url(port, web1, 'data/cache')],
      [url(port, web1, 'data/deep/cache/y')],
      [url(port, web1, 'data/junk.tmp')],
      [url(port, web1, 'data/#hash')],
      [url(port, web1, 'data/back\\slash/f')],
      [url(port, web1, 'data/logs/today')],
      [url(port, web1, 'data/logs/')],
      ['-R', url(port, web1, 'data/localhost/secret')],
      ['-R', url(port, web1, 'data/./deep/cache/y')],
      ['--include=localhost/', '--include=localhost/secret', '--include=cache/***', '--include=*.tmp', url(port, web1, 'data/')],
      ['--include=/localhost/***', '--include=**/cache/***', '--include=*', url(port, web1, 'data/')],
      ['--filter=+ /localhost/secret', '--filter=- *', url(port, web1, 'data/')],
    ];
    for (const [i, args] of attempts.entries()) {
      const d = dest(`excl-${i}`);
      await rsync(['-a', ...args, `${d}/`], pw);
      const got = readAllFiles(d);
      for (const secret of ['s3cret', 'cached', 'junk', 'comment', 'backslashed', 'log line']) {
        assert.ok(!got.includes(secret), `attempt ${JSON.stringify(args)} leaked ${secret}`);
      }
    }
    const d = dest('excl-files-from');
    const r = await rsync(['-a', '--files-from=-', url(port, web1, 'data/'), `${d}/`], {
      ...pw,
      input: 'localhost/secret\ncache/x\ndeep/cache/y\njunk.tmp\nhello.txt\n',
    });
    assert.notEqual(r.code, 0, 'the daemon refuses --files-from');
    assert.match(r.stderr, /refuse/);
    assert.ok(!readAllFiles(d).includes('s3cret') && !readAllFiles(d).includes('cached') && !readAllFiles(d).includes('junk'));
  });

  test("the agent's pull (--delete --force --from0 --include-from=- --exclude=*) works", async () => {
    const d = dest('agent');
    writeFileSync(join(d, 'stale.txt'), 'deleted upstream\n');
    mkdirSync(join(d, 'gone/sub'), { recursive: true });
    writeFileSync(join(d, 'gone/sub/f'), 'deleted upstream\n');
    writeFileSync(join(d, 'untouched.txt'), 'not in this batch\n');
    const list = ['hello.txt', 'stale.txt', 'gone/', 'gone/***', 'deep/', 'deep/keep.txt', 'links/', 'links/abs'];
    const r = await rsync(
      ['-a', '--delete', '--force', '--from0', '--include-from=-', '--exclude=*', url(port, web1, 'data/'), `${d}/`],
      { password: web1.password, input: list.join('\0') + '\0' },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(d, 'hello.txt'), 'utf8'), 'hello\n');
    assert.equal(readFileSync(join(d, 'deep/keep.txt'), 'utf8'), 'keep\n');
    assert.equal(readlinkSync(join(d, 'links/abs')), '/etc/hostname');
    assert.ok(!existsSync(join(d, 'stale.txt')), '--delete removed a listed file gone upstream');
    assert.ok(!existsSync(join(d, 'gone')), '--delete --force removed a listed tree gone upstream');
    assert.ok(existsSync(join(d, 'untouched.txt')), 'unlisted files are left alone');
    assert.ok(!existsSync(join(d, 'private.txt')), 'only listed paths are pulled');
  });

  test('refusing "delete" on the daemon does not refuse a pulling client\'s delete modes', async () => {
    for (const mode of ['--delete', '--delete-before', '--delete-during', '--delete-delay', '--delete-after', '--delete-excluded', '--max-delete=5']) {
      const d = dest(`del${mode}`);
      mkdirSync(join(d, 'deep'));
      writeFileSync(join(d, 'deep/stale.txt'), 'x');
      const extra = mode === '--max-delete=5' ? ['--delete'] : [];
      const r = await rsync(['-a', ...extra, mode, '--include=/deep/***', '--exclude=*', url(port, web1, 'data/'), `${d}/`], { password: web1.password });
      assert.equal(r.code, 0, `${mode}: ${r.stderr}`);
      assert.ok(!existsSync(join(d, 'deep/stale.txt')), mode);
    }
  });

  test('symlinks are served as symlinks, never followed', async () => {
    const d = join(dest('links'), 'links');
    const r = await rsync(['-a', '--include=/links/***', '--exclude=*', url(port, web1, 'data/'), `${dirname(d)}/`], { password: web1.password });
    assert.equal(r.code, 0, r.stderr);
    for (const [name, target] of [
      ['abs', '/etc/hostname'],
      ['dangling', '/nonexistent/nowhere'],
      ['outside', '../../outside/file'],
      ['dir', '/etc'],
    ]) {
      assert.ok(lstatSync(join(d, name!)).isSymbolicLink(), `${name} arrives as a symlink`);
      assert.equal(readlinkSync(join(d, name!)), target);
    }
    const through = await rsync(['-a', url(port, web1, 'data/links/dir/hostname'), join(dest('through'), 'h')], { password: web1.password });
    assert.notEqual(through.code, 0, 'a path through a symlink to a directory outside the module is not served');
    assert.ok(!existsSync(join(root, 'dest/through/h')));
  });

  test('options that make the daemon follow symlinks or write are refused', async () => {
    for (const opt of ['-L', '--copy-unsafe-links', '-k', '--remove-source-files']) {
      const d = dest(`refuse${opt}`);
      const r = await rsync(['-a', opt, url(port, web1, 'data/'), `${d}/`], { password: web1.password });
      assert.notEqual(r.code, 0, `${opt} must fail`);
      assert.match(r.stderr, /refuse/, opt);
      assert.deepEqual(readdirSync(d), []);
    }
    assert.ok(existsSync(join(src, 'links/abs')), 'nothing was removed from the source');
    assert.ok(!logs.some((l) => l.includes('No match for refuse-options')), 'every refused option name is known to rsync');
    assert.ok(!logs.some((l) => /unknown parameter/i.test(l)), 'every parameter is known to rsync');
    const up = join(root, 'upload');
    mkdirSync(up);
    writeFileSync(join(up, 'evil'), 'x');
    const push = await rsync(['-a', `${up}/`, url(port, web1, 'data/')], { password: web1.password });
    assert.notEqual(push.code, 0);
    assert.match(push.stderr, /read only/);
    assert.ok(!existsSync(join(src, 'evil')));
  });

  test('no password reaches the log', () => {
    assert.ok(logs.length > 0);
    for (const c of creds.values()) assert.ok(!logs.some((l) => l.includes(c.password)));
  });

  test('kill -9: the daemon is restarted and pulls work again', async () => {
    const before = daemon.status();
    const exits: RsyncDaemonExit[] = [];
    daemon.on('exit', (e: RsyncDaemonExit) => exits.push(e));
    const restarted = once(daemon, 'restarted', { signal: AbortSignal.timeout(10_000) });
    process.kill(before.pid!, 'SIGKILL');
    await restarted;
    const after = daemon.status();
    assert.equal(after.running, true);
    assert.equal(after.restarts, before.restarts + 1);
    assert.notEqual(after.pid, before.pid);
    assert.match(after.lastError ?? '', /SIGKILL/);
    assert.equal(exits[0]?.signal, 'SIGKILL');
    assert.deepEqual(related(before.pid!), [], 'nothing of the killed daemon is left');
    const r = await rsync(['-a', '--include=/hello.txt', '--exclude=*', url(port, web1, 'data/'), `${dest('after-kill')}/`], { password: web1.password });
    assert.equal(r.code, 0, r.stderr);
  });

  test('stop() leaves no rsync process, in-flight transfers included, and removes the runtime dir', async () => {
    const big = join(src, 'big.bin');
    writeFileSync(big, Buffer.alloc(4 * 1024 * 1024, 7));
    const pid = daemon.status().pid!;
    const runtime = dirname(configPathOf(pid));
    const slow = rsync(['-a', '--bwlimit=64', '--include=/big.bin', '--exclude=*', url(port, web1, 'data/'), `${dest('slow')}/`], { password: web1.password });
    await waitFor(() => related(pid).some((p) => p.pid !== pid), 10_000, 'a connection child');
    await daemon.stop();
    assert.deepEqual(related(pid), [], 'no daemon, connection child or grandchild survives stop()');
    assert.equal(daemon.status().running, false);
    assert.ok(!existsSync(runtime), 'runtime dir removed');
    const r = await slow;
    assert.notEqual(r.code, 0, 'the in-flight pull was cut off');
    rmSync(big);
  });

  test('after a restart with fresh credentials the old ones fail', async () => {
    const old = web1;
    creds = makeCredentials(['web1', 'web2']);
    web1 = creds.get('web1')!;
    daemon = newDaemon();
    await daemon.start();
    const d = dest('rotated');
    const stale = await rsync(['-a', '--include=/hello.txt', '--exclude=*', url(port, old, 'data/'), `${d}/`], { password: old.password });
    assert.equal(stale.code, 5, stale.stderr);
    const staleUserNewPassword = await rsync(['-a', '--include=/hello.txt', '--exclude=*', url(port, old, 'data/'), `${d}/`], { password: web1.password });
    assert.equal(staleUserNewPassword.code, 5);
    const fresh = await rsync(['-a', '--include=/hello.txt', '--exclude=*', url(port, web1, 'data/'), `${d}/`], { password: web1.password });
    assert.equal(fresh.code, 0, fresh.stderr);
  });

  test('start() rejects clearly when the port is taken', async () => {
    const second = newDaemon();
    await assert.rejects(second.start(), /already in use/);
    assert.equal(second.status().running, false);
    assert.equal(daemon.status().running, true, 'the first daemon is unaffected');
  });

  test('start() rejects clearly when rsync is missing', async () => {
    const missing = newDaemon({ binary: '/nonexistent/rsync', port: await findFreePort(HOST) });
    await assert.rejects(missing.start(), /rsync binary "\/nonexistent\/rsync" not found/);
  });

  test('runAs decides what the daemon can read', async (t) => {
    if (!isRoot) {
      t.skip('needs root to switch user');
      return;
    }
    const p = await findFreePort(HOST);
    const nobody = newDaemon({ port: p, runAs: { uid: 65534, gid: 65534 } });
    await nobody.start();
    const d = dest('nobody');
    const r = await rsync(['-a', url(p, web1, 'data/'), `${d}/`], { password: web1.password });
    assert.equal(r.code, 23, 'a partial transfer: private.txt is unreadable');
    assert.match(r.stderr, /private\.txt.*Permission denied/);
    assert.equal(readFileSync(join(d, 'hello.txt'), 'utf8'), 'hello\n');
    assert.ok(!existsSync(join(d, 'localhost/secret')), 'the exclude file is read before the switch');
    await nobody.stop();
  });

  test('behind the front: an authenticated pull outlives the pre-auth deadline; an address without a session gets @ERROR', async () => {
    const bigDir = join(root, 'big');
    mkdirSync(bigDir);
    writeFileSync(join(bigDir, 'big.bin'), randomBytes(400_000));
    const backPort = await findFreePort(HOST);
    const frontPort = await findFreePort(HOST);
    const d = newDaemon({ port: backPort, front: frontPort, modules: [{ name: 'big', path: bigDir, excludes: [] }] });
    await d.start();
    const front = new RsyncFront({ host: HOST, port: frontPort, backend: { host: HOST, port: backPort }, preAuthTimeoutMs: 500 });
    await front.start();
    try {
      const session = {};
      front.admit(session, HOST);
      // About 2 s at 200 KiB/s: four times the deadline, which only binds until rsync says "@RSYNCD: OK".
      const started = Date.now();
      const r = await rsync(['-a', '--bwlimit=200', url(frontPort, web1, 'big/'), `${dest('through-front')}/`], { password: web1.password });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(Date.now() - started > 1_000, 'the pull was slow enough to test the deadline');
      assert.equal(statSync(join(dest('through-front'), 'big.bin')).size, 400_000);
      const anon = await rsync(['-a', '--address=127.0.0.2', url(frontPort, web1, 'big/'), `${dest('refused')}/`], { password: web1.password });
      assert.notEqual(anon.code, 0);
      assert.match(anon.stderr, /@ERROR: no authenticated inosync agent at this address/);
      front.release(session);
      const released = await rsync(['-a', url(frontPort, web1, 'big/'), `${dest('released')}/`], { password: web1.password });
      assert.match(released.stderr, /@ERROR: no authenticated inosync agent/);
    } finally {
      await front.stop();
      await d.stop();
    }
  });

  test('listens on IPv6 with --address', async (t) => {
    if (!hasIPv6Loopback()) {
      t.skip('no ::1 on this host');
      return;
    }
    const p = await findFreePort('::1');
    const v6 = newDaemon({ host: '::1', port: p });
    await v6.start();
    const r = await rsync(['-a', '--include=/hello.txt', '--exclude=*', url(p, web1, 'data/', '::1'), `${dest('v6')}/`], { password: web1.password });
    assert.equal(r.code, 0, r.stderr);
    await v6.stop();
  });
});

describe('RsyncDaemon supervision (a stand-in daemon)', () => {
  // A node script in rsync's place: it listens on --address/--port like the
  // daemon, and a plan file says how long each successive run stays up
  // (-1 forever, 0 fails at once) and whether it ignores SIGTERM.
  let root: string;
  const started: RsyncDaemon[] = [];

  before(() => {
    root = mkdtempSync(join(tmpdir(), 'inosync-rsyncd-fake-'));
  });
  after(async () => {
    for (const d of started) await d.stop();
    rmSync(root, { recursive: true, force: true });
  });

  function fakeDaemon(name: string, plan: { up: number[]; ignoreTerm?: boolean }): string {
    const dir = join(root, name);
    mkdirSync(dir);
    writeFileSync(join(dir, 'plan.json'), JSON.stringify(plan));
    writeFileSync(join(dir, 'count'), '0');
    const script = join(dir, 'fake-rsync.mjs');
    writeFileSync(
      script,
      `#!${process.execPath}
import { createServer } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
const dir = ${JSON.stringify(dir)};
const n = Number(readFileSync(dir + '/count', 'utf8')) + 1;
writeFileSync(dir + '/count', String(n));
const plan = JSON.parse(readFileSync(dir + '/plan.json', 'utf8'));
const arg = (k) => process.argv.find((a) => a.startsWith(k + '=')).slice(k.length + 1);
const up = plan.up[Math.min(n, plan.up.length) - 1];
if (plan.ignoreTerm) process.on('SIGTERM', () => console.error('fake rsyncd: ignoring SIGTERM'));
if (up === 0) { console.error('fake rsyncd: run ' + n + ' cannot start'); process.exit(3); }
createServer((s) => s.destroy()).listen(Number(arg('--port')), arg('--address'));
if (up > 0) setTimeout(() => process.exit(1), up);
`,
      { mode: 0o755 },
    );
    return script;
  }

  async function daemonWith(binary: string, timing: RsyncDaemonOptions['timing']): Promise<RsyncDaemon> {
    const d = new RsyncDaemon({
      binary,
      host: HOST,
      port: await findFreePort(HOST),
      modules: [{ name: 'm', path: root, excludes: [] }],
      credentials: [{ user: 'u', password: 'p' }],
      timing,
    });
    started.push(d);
    return d;
  }

  function collectExits(d: RsyncDaemon, n: number): Promise<RsyncDaemonExit[]> {
    const got: RsyncDaemonExit[] = [];
    return new Promise((resolve) => {
      d.on('exit', (e: RsyncDaemonExit) => {
        got.push(e);
        if (got.length === n) resolve(got);
      });
    });
  }

  test('restarts back off by doubling up to the cap', async () => {
    const d = await daemonWith(fakeDaemon('double', { up: [150, 0] }), { backoffInitialMs: 20, backoffMaxMs: 100, stableAfterMs: 60_000 });
    const exits = collectExits(d, 6);
    await d.start();
    const got = await exits;
    assert.deepEqual(
      got.map((e) => e.restartInMs),
      [20, 40, 80, 100, 100, 100],
    );
    assert.equal(got[0]!.code, 1, 'the first exit is the crash of the running daemon');
    assert.match(d.status().lastError ?? '', /cannot start/, 'the failed attempts say why');
    assert.equal(d.status().running, false);
    assert.equal(d.status().restarts, 0);
    await d.stop();
  });

  test('a daemon that stayed up long enough restarts after the initial delay again', async () => {
    const d = await daemonWith(fakeDaemon('reset', { up: [150, 0, 0, 400] }), { backoffInitialMs: 20, backoffMaxMs: 1_000, stableAfterMs: 300 });
    const exits = collectExits(d, 4);
    const restarted = once(d, 'restarted');
    await d.start();
    await restarted;
    const got = await exits;
    assert.deepEqual(
      got.map((e) => e.restartInMs),
      [20, 40, 80, 20],
    );
    assert.ok(d.status().restarts >= 1);
    await d.stop();
  });

  test('stop() escalates to SIGKILL when SIGTERM is ignored', async () => {
    const d = await daemonWith(fakeDaemon('stubborn', { up: [-1], ignoreTerm: true }), { stopTimeoutMs: 300 });
    await d.start();
    const pid = d.status().pid!;
    const t0 = Date.now();
    await d.stop();
    assert.ok(Date.now() - t0 >= 300, 'SIGTERM was given its time first');
    assert.deepEqual(related(pid), []);
  });
});

