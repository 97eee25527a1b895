// The daemon's pre-xfer script, run as rsync runs it: the environment of one
// request in, exit 0 (serve) or 1 (refuse) out. Requests a stock client cannot
// send (arguments before ".", "--") are covered here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PRE_XFER_SCRIPT } from '../../src/rsync/only-module-root.js';

const OPTS = ['--server', '--sender', '-logDtpre.iLsfxCIvu'];

function run(request: string, args: string[]): { code: number | null; out: string } {
  const env: Record<string, string> = { PATH: '/usr/bin:/bin', RSYNC_MODULE_NAME: 'www', RSYNC_REQUEST: request, RSYNC_ARG0: 'rsyncd' };
  args.forEach((a, i) => (env[`RSYNC_ARG${i + 1}`] = a));
  const r = spawnSync('/bin/sh', ['-c', PRE_XFER_SCRIPT], { env, encoding: 'utf8' });
  return { code: r.status, out: r.stdout };
}

const cases: [string, string, string[], 0 | 1][] = [
  ['the module root', 'www/', [...OPTS, '.', '/'], 0],
  ['the root with the agent\'s options', 'www/', [...OPTS, '--timeout=60', '--max-delete=5', '.', '/'], 0],
  ['the module root without a chroot (a master not running as root)', 'www/', [...OPTS, '.', '.'], 0],
  ['a file below the root without a chroot', 'www/alias/key.txt', [...OPTS, '.', 'alias/key.txt'], 1],
  ['a file below the root', 'www/alias/key.txt', [...OPTS, '.', '/alias/key.txt'], 1],
  ['the root through "."', 'www/.', [...OPTS, '.', '/.'], 1],
  ['the root and another path', 'www/ www/alias/key.txt', [...OPTS, '.', '/', '/alias/key.txt'], 1],
  ['a forged request line with a second path in the arguments', 'www/', [...OPTS, '.', '/', '/alias'], 1],
  ['a non-option before ".": it would become the served directory', 'www/', [...OPTS, 'alias', '.', '/'], 1],
  ['"--" ending the options early', 'www/', [...OPTS, '--', '-alias', '.', '/'], 1],
  ['a lone "-"', 'www/', [...OPTS, '-', '.', '/'], 1],
  ['no "." at all', 'www/', [...OPTS, '/'], 1],
  ['an empty path', 'www/', [...OPTS, '.', ''], 1],
  ['no path', 'www/', [...OPTS, '.'], 1],
  ['another module\'s name', 'web/', [...OPTS, '.', '/'], 1],
  ['shell syntax in an argument is data', 'www/', [...OPTS, '$(touch /tmp/inosync-pwned)', '.', '/'], 1],
];

for (const [what, request, args, want] of cases) {
  test(`pre-xfer: ${what} → ${want === 0 ? 'served' : 'refused'}`, () => {
    const r = run(request, args);
    assert.equal(r.code, want, r.out);
    if (want === 1) assert.match(r.out, /^inosync: .*only rsync:\/\/HOST:PORT\/www\/ can be pulled\n$/);
  });
}
