// Issue 10, item 9: which Host headers the status listener answers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostAllowed, hostOf } from '../../src/master/host-check.js';

const loopback = { listenHost: '127.0.0.1', localAddresses: ['127.0.0.1', '::1', '10.1.2.3'], names: ['origin.example'] };
const wildcard = { ...loopback, listenHost: '0.0.0.0' };
const named = { ...loopback, listenHost: 'status.internal' };

const cases: [string | undefined, typeof loopback, boolean][] = [
  ['127.0.0.1:8722', loopback, true],
  ['127.0.0.1', loopback, true],
  ['127.9.9.9:1', loopback, true],
  ['[::1]:8722', loopback, true],
  ['[::ffff:127.0.0.1]:8722', loopback, true],
  ['localhost:8722', loopback, true],
  ['LOCALHOST.:8722', loopback, true],
  ['origin.example:8722', loopback, true],
  ['Origin.Example.', loopback, true],
  // DNS rebinding: an attacker's name, whatever it resolves to now.
  ['evil.example:8722', loopback, false],
  ['evil.example', loopback, false],
  ['localhost.evil.example', loopback, false],
  ['evil.localhost', loopback, false],
  ['127.0.0.1.evil.example', loopback, false],
  ['origin.example.evil.example', loopback, false],
  // This host's other addresses only when the listener is on all of them.
  ['10.1.2.3:8722', loopback, false],
  ['10.1.2.3:8722', wildcard, true],
  ['10.9.9.9:8722', wildcard, false],
  ['status.internal:8722', named, true],
  ['status.internal:8722', loopback, false],
  // Malformed or absent.
  [undefined, loopback, false],
  ['', loopback, false],
  ['127.0.0.1:port', loopback, false],
  ['[::1', loopback, false],
  ['[::1]x', loopback, false],
  ['user@127.0.0.1', loopback, false],
  ['127.0.0.1/x', loopback, false],
  ['127.0.0.1 evil.example', loopback, false],
];

for (const [header, rules, ok] of cases) {
  test(`Host ${JSON.stringify(header)} with listen ${rules.listenHost}: ${ok ? 'answered' : 'refused'}`, () => {
    assert.equal(hostAllowed(header, rules), ok);
  });
}

test('hostOf: the host part, lowercased, without port, brackets or final dot', () => {
  assert.equal(hostOf('Example.COM.:80'), 'example.com');
  assert.equal(hostOf('[::1]:1'), '::1');
  assert.equal(hostOf('a:b:c'), null);
});
