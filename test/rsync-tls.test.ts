// The command rsync runs to reach a TLS master: checked as data, then run by
// a real rsync (which expands % escapes) and a real /bin/sh (which unquotes),
// with a stand-in openssl that records the arguments it was given.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tlsConnectProg } from '../src/agent/rsync-tls.js';
import { run } from './helpers/security.js';

test('an IP address is verified as an IP, a name as a name and sent as SNI', () => {
  const ip = tlsConnectProg({ openssl: 'openssl', host: '10.0.0.1', port: 8730 });
  assert.match(ip, /-verify_ip 10\.0\.0\.1 /);
  assert.doesNotMatch(ip, /-servername|-verify_hostname|-CAfile/);
  assert.match(ip, /-connect 10\.0\.0\.1:8730$/);
  const name = tlsConnectProg({ openssl: 'openssl', host: 'origin.example', port: 873 });
  assert.match(name, /-verify_hostname origin\.example -servername origin\.example /);
  const v6 = tlsConnectProg({ openssl: 'openssl', host: '[::1]', port: 8730 });
  assert.match(v6, /-verify_ip ::1 .*-connect '\[::1\]:8730'$/);
  for (const p of [ip, name, v6]) {
    assert.match(p, /^exec openssl s_client -quiet -no_ign_eof -nocommands -verify_quiet -verify_return_error /);
  }
});

test('a pinned CA replaces the system store', () => {
  const p = tlsConnectProg({ openssl: '/usr/bin/openssl', host: 'h.example', port: 1, ca: '/etc/inosync/ca.pem' });
  assert.match(p, /-CAfile \/etc\/inosync\/ca\.pem -no-CApath -no-CAstore /);
});

test('through a real rsync and /bin/sh, openssl gets exactly the intended arguments, whatever the paths hold', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'inosync-rsync-tls-'));
  try {
    const odd = join(dir, `bin dir 'q' "d" %H %% $HOME \`id\` ;&|`);
    mkdirSync(odd);
    const openssl = join(odd, 'openssl');
    writeFileSync(openssl, '#!/bin/sh\nfor a in "$@"; do printf \'%s\\0\' "$a"; done > "$ARGV_OUT"\nexit 1\n', { mode: 0o755 });
    const ca = join(odd, 'ca %s.pem');
    const out = join(dir, 'argv');
    const prog = tlsConnectProg({ openssl, host: 'localhost', port: 8731, ca });
    const r = await run('rsync', ['--contimeout=5', 'rsync://someone@localhost:8731/www/', join(dir, 'dst') + '/'], {
      env: { PATH: process.env.PATH, RSYNC_CONNECT_PROG: prog, ARGV_OUT: out, RSYNC_PASSWORD: 'x' },
    });
    assert.notEqual(r.code, 0, 'the stand-in connects nowhere');
    const argv = readFileSync(out, 'utf8').split('\0').slice(0, -1);
    assert.deepEqual(argv, [
      's_client', '-quiet', '-no_ign_eof', '-nocommands', '-verify_quiet', '-verify_return_error',
      '-verify_hostname', 'localhost', '-servername', 'localhost',
      '-CAfile', ca, '-no-CApath', '-no-CAstore',
      '-connect', 'localhost:8731',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
