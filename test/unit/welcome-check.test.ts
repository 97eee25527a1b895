// Issue 10, item 7 and the suspected wss:// downgrade: what the agent refuses
// in a welcome, at the schema (protocol/messages.ts) and after it (agent/welcome-check.ts);
// and an applier run that throws costs that path's run, never the agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseWelcome, type Welcome, type RunReport } from '../../src/protocol/messages.js';
import { credentialsProblem, welcomeProblem } from '../../src/agent/welcome-check.js';
import { Applier } from '../../src/agent/applier.js';
import { ManualClock } from '../../harness/manual-clock.js';
import { quietLog } from '../../harness/quiet-log.js';
import { waitFor } from '../../harness/wait.js';

const bytes = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
function welcome(over: Partial<Welcome> = {}): Record<string, unknown> {
  return {
    t: 'welcome', conn: bytes(16), n: 0, node: 'm1', session: bytes(16), boxKey: bytes(32),
    creds: { nonce: bytes(24), box: bytes(64) }, rsyncPort: 873, rsyncTls: false,
    paths: [{ name: 'www', exclude: ['*.tmp'] }], ...over,
  };
}

const refusedBySchema: [string, Partial<Welcome>, RegExp][] = [
  ['an exclude with a NUL (it crashed the agent)', { paths: [{ name: 'www', exclude: ['a\0b'] }] }, /NUL/],
  ['an empty exclude', { paths: [{ name: 'www', exclude: [''] }] }, /empty/],
  ['an exclude with a newline', { paths: [{ name: 'www', exclude: ['a\nb'] }] }, /newline/],
  ['an exclude with a carriage return', { paths: [{ name: 'www', exclude: ['a\rb'] }] }, /carriage/],
  ['an exclude with a lone surrogate', { paths: [{ name: 'www', exclude: ['a\ud800'] }] }, /surrogate/],
  ['an exclude over PATH_MAX bytes', { paths: [{ name: 'www', exclude: ['é'.repeat(2100)] }] }, /longer than/],
  ['a path named ..', { paths: [{ name: '..', exclude: [] }] }, /path components/],
  ['a path named .', { paths: [{ name: '.', exclude: [] }] }, /path components/],
  ['a path announced twice', { paths: [{ name: 'www', exclude: [] }, { name: 'www', exclude: ['x'] }] }, /twice/],
  ['a node named ..', { node: '..' }, /path components/],
];

for (const [what, over, why] of refusedBySchema) {
  test(`the welcome's schema refuses ${what}`, () => {
    assert.throws(() => parseWelcome(welcome(over)), why);
  });
}

test('the schema takes a well-formed welcome', () => {
  assert.equal(parseWelcome(welcome()).paths[0]!.name, 'www');
});

const w = (over: Partial<Welcome> = {}): Welcome => parseWelcome(welcome(over));
const rules = (overTls: boolean, allowPlainRsync = false) => ({ overTls, allowPlainRsync });

test('over wss://, a master that serves plain rsync is refused unless the agent allows it', () => {
  assert.match(welcomeProblem(w({ rsyncTls: false }), rules(true)) ?? '', /refusing to pull files in clear.*allowPlainRsync/);
  assert.equal(welcomeProblem(w({ rsyncTls: false }), rules(true, true)), null);
  assert.equal(welcomeProblem(w({ rsyncTls: true }), rules(true)), null);
  assert.equal(welcomeProblem(w({ rsyncTls: false }), rules(false)), null, 'ws:// is plain anyway');
  assert.match(welcomeProblem(w({ rsyncTls: true }), rules(false)) ?? '', /use a wss:\/\/ url/);
});

test('an exclude rsync would read otherwise than the master meant is refused by the agent', () => {
  for (const e of ['!', '- secret', '/', 'a//b', 'a/../b']) {
    assert.match(welcomeProblem(w({ paths: [{ name: 'www', exclude: [e] }] }), rules(false)) ?? '', /exclude pattern rsync cannot use safely/, e);
  }
  assert.equal(welcomeProblem(w({ paths: [{ name: 'www', exclude: ['/localhost/', '*.tmp'] }] }), rules(false)), null);
});

test('a run that throws is that path\'s fatal failure, reported; the applier serves the next batch', async (t) => {
  const clock = new ManualClock();
  const ok = mkdtempSync(join(tmpdir(), 'inosync-applier-'));
  t.after(() => rmSync(ok, { recursive: true, force: true }));
  const results: { seq: number; ok: boolean; runs: RunReport[] }[] = [];
  const errors: string[] = [];
  const log = { ...quietLog, error: (m: string) => void errors.push(m), child: () => log };
  const applier = new Applier({
    rsync: { binary: '/bin/true', bwlimit: 0, extra: [], timeout: 30 },
    dryRun: false, log, clock, password: () => null,
    onApplied: () => undefined,
    onResult: (seq, good, runs) => void results.push({ seq, ok: good, runs }),
  });
  t.after(() => applier.stop());
  // buildRsyncArgs throws on both: a NUL exclude (as a hostile welcome once carried) and '/' as a target.
  applier.setPaths([
    { name: 'bad', target: ok, maxDelete: 0, excludes: ['a\0b'], url: 'rsync://m1@127.0.0.1:9/bad/' },
    { name: 'root', target: '/', maxDelete: 0, excludes: [], url: 'rsync://m1@127.0.0.1:9/root/' },
    { name: 'www', target: ok, maxDelete: 0, excludes: [], url: 'rsync://m1@127.0.0.1:9/www/' },
  ]);
  const full = (name: string) => ({ name, full: true, files: [], dirs: [], trees: [] });
  applier.enqueue(1, [full('bad'), full('root'), full('www')]);
  await waitFor(() => results.length === 1, 5_000, 'the result of the first batch');
  const byPath = new Map(results[0]!.runs.map((r) => [r.path, r]));
  assert.equal(results[0]!.ok, false);
  assert.equal(byPath.get('bad')?.kind, 'fatal');
  assert.match(byPath.get('bad')?.message ?? '', /cannot run rsync for this path: bad exclude pattern/);
  assert.equal(byPath.get('root')?.kind, 'fatal');
  assert.match(byPath.get('root')?.message ?? '', /filesystem root/);
  assert.equal(byPath.get('www')?.kind, 'ok', 'the other path ran');
  assert.ok(errors.length >= 2);
  applier.enqueue(2, [full('www')]);
  await waitFor(() => results.length === 2, 5_000, 'the next batch');
  assert.equal(results[1]!.ok, true);
});

test('master.allowPlainRsync: absent by default, a boolean, and said out loud in check-config', async () => {
  const { parseAgentConfig } = await import('../../src/config/agent.js');
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const dir = mkdtempSync(join(tmpdir(), 'inosync-cfg-'));
  try {
    mkdirSync(join(dir, 'www'));
    const file = join(dir, 'agent.json');
    const cfg = (master: Record<string, unknown>) =>
      writeFileSync(file, JSON.stringify({ name: 'm1', key: 'k', master: { key: 'ED6dD44WKxdpn+aM9gRlSC5mtSQ6cI47SBSanev93UQ=', ...master }, state: 'state', paths: [{ name: 'www', target: 'www' }] }));
    const opts = { fsChecksAsWarnings: true };
    const about = (r: ReturnType<typeof parseAgentConfig>) => r.problems.filter((p) => p.key === 'master.allowPlainRsync');
    cfg({ url: 'wss://origin.example:7070' });
    let r = parseAgentConfig(file, opts);
    assert.equal(r.config?.master.allowPlainRsync, undefined);
    assert.deepEqual(about(r), []);
    cfg({ url: 'wss://origin.example:7070', allowPlainRsync: true });
    r = parseAgentConfig(file, opts);
    assert.equal(r.config?.master.allowPlainRsync, true);
    assert.match(about(r)[0]?.reason ?? '', /travel in clear/);
    assert.equal(about(r)[0]?.severity, 'warning');
    cfg({ url: 'ws://origin.example:7070', allowPlainRsync: true });
    assert.match(about(parseAgentConfig(file, opts))[0]?.reason ?? '', /only used with a wss:\/\/ url/);
    cfg({ url: 'wss://origin.example:7070', allowPlainRsync: 'yes' });
    assert.ok(parseAgentConfig(file, opts).problems.some((p) => p.key === 'master.allowPlainRsync' && p.severity === 'error'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('credentials that cannot go into an rsync:// URL or the environment are refused', () => {
  assert.equal(credentialsProblem({ user: 'inosync-m1-abc_12.x', password: 'Zm9vYmFy-_' }), null);
  for (const user of ['', 'a\0b', 'x@evil.example:873', 'a/b', 'a b', 'é']) {
    assert.match(credentialsProblem({ user, password: 'p' }) ?? '', /rsync user name/, JSON.stringify(user));
  }
  for (const password of ['', 'a\0b', 'a\nb', 'x'.repeat(513), 'é']) {
    assert.match(credentialsProblem({ user: 'u', password }) ?? '', /rsync password/, JSON.stringify(password));
  }
});
