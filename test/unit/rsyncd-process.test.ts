// One rsync daemon process and its process group, with stand-ins for rsync:
// how its death is described, what it said before, and how a group is ended.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeExit, groupGone, killGroup } from '../../src/master/rsyncd/process-group.js';
import { parentDeathCommand, spawnErrorMessage, spawnRsyncd } from '../../src/master/rsyncd/process.js';

const dir = mkdtempSync(join(tmpdir(), 'inosync-rsyncd-proc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('describeExit', () => {
  const cases: [{ code: number | null; signal: NodeJS.Signals | null }, string][] = [
    [{ code: 0, signal: null }, 'exited with code 0'],
    [{ code: 10, signal: null }, 'exited with code 10'],
    [{ code: null, signal: 'SIGKILL' }, 'was killed by SIGKILL'],
    [{ code: null, signal: null }, 'exited with code null'],
  ];
  for (const [exit, want] of cases) test(want, () => assert.equal(describeExit(exit), want));
});

describe('spawnErrorMessage', () => {
  const cases: [string | undefined, RegExp][] = [
    ['ENOENT', /^rsync binary "\/opt\/rsync" not found: install rsync or set rsync\.binary to its path$/],
    ['EACCES', /^rsync binary "\/opt\/rsync" is not executable: check its permissions or set rsync\.binary$/],
    ['E2BIG', /^could not start the rsync daemon "\/opt\/rsync": boom$/],
  ];
  for (const [code, want] of cases) test(String(code), () => assert.match(spawnErrorMessage('/opt/rsync', { code, message: 'boom' }), want));
});

describe('spawnRsyncd', () => {
  test('a missing binary is refused with what to do', async () => {
    await assert.rejects(
      spawnRsyncd({ binary: join(dir, 'no-such-rsync'), args: [], logFile: join(dir, 'missing.log'), onLog: () => undefined }),
      /not found: install rsync or set rsync\.binary/,
    );
  });

  test('what it printed and logged, without timestamps, is heard before its exit', async () => {
    const log = join(dir, 'dying.log');
    const script = join(dir, 'dying.sh');
    writeFileSync(script, `#!/bin/sh\necho "2026/12/03 18:00:00 [1] cannot bind"\necho "on stderr" >&2\necho "2026/12/03 18:00:01 [1] logged" >> ${JSON.stringify(log)}\nexit 3\n`, { mode: 0o755 });
    const heard: string[] = [];
    const s = await spawnRsyncd({ binary: script, args: [], logFile: log, onLog: (t) => heard.push(t) });
    assert.ok(s.pid > 0);
    await s.exited;
    assert.deepEqual(s.exit, { code: 3, signal: null });
    assert.deepEqual([...heard].sort(), ['[1] cannot bind', '[1] logged', 'on stderr']);
    assert.deepEqual([...s.tail].sort(), [...heard].sort());
  });
});

describe('process groups', () => {
  test('killGroup ends every process of the group; groupGone sees it', async () => {
    // A shell leading its own group with a child: both must go.
    const sh = spawn('/bin/sh', ['-c', 'sleep 30 & wait'], { detached: true, stdio: 'ignore' });
    await new Promise((r) => sh.once('spawn', r));
    const pgid = sh.pid!;
    assert.equal(await groupGone(pgid, 100), false, 'the group is alive');
    killGroup(pgid, 'SIGKILL');
    assert.equal(await groupGone(pgid, 5_000), true);
  });

  test('killGroup ignores no group and a gone one', () => {
    killGroup(0, 'SIGKILL');
    killGroup(-5, 'SIGKILL');
    killGroup(2 ** 22 + 12_345, 'SIGTERM');
  });
});

describe('parentDeathCommand', () => {
  const SETPRIV = '/usr/bin/setpriv';
  test('without setpriv the binary runs as it is', () => {
    assert.deepEqual(parentDeathCommand('rsync', ['--daemon'], '/usr/bin', null), { file: 'rsync', args: ['--daemon'] });
  });
  test('with setpriv: the binary found on PATH, run with a parent-death SIGKILL', () => {
    const bin = join(dir, 'fake-rsync');
    writeFileSync(bin, '#!/bin/sh\n', { mode: 0o755 });
    assert.deepEqual(parentDeathCommand('fake-rsync', ['--daemon', '--no-detach'], `/nonexistent:${dir}`, SETPRIV), {
      file: SETPRIV,
      args: ['--pdeathsig', 'SIGKILL', '--', bin, '--daemon', '--no-detach'],
    });
    assert.deepEqual(parentDeathCommand(bin, [], '', SETPRIV), { file: SETPRIV, args: ['--pdeathsig', 'SIGKILL', '--', bin] });
  });
  test('a missing or non-executable binary fails as the spawn would have', () => {
    const missing = parentDeathCommand('/nonexistent/rsync', [], '/usr/bin', SETPRIV);
    assert.ok('error' in missing && missing.error.code === 'ENOENT');
    const plain = join(dir, 'not-executable');
    writeFileSync(plain, 'x', { mode: 0o644 });
    const denied = parentDeathCommand(plain, [], '', SETPRIV);
    if (process.getuid?.() !== 0) assert.ok('error' in denied && denied.error.code === 'EACCES');
    assert.ok('error' in parentDeathCommand('no-such-rsync-anywhere', [], `/nonexistent:${dir}`, SETPRIV));
  });
});
