// Issue 10, suspected: the agent's state file was written to `${file}.tmp`
// with 'w' (following a link planted there) in a directory nobody checked.
// We run as root in CI, so a directory owned by another user is real here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppliedStore } from '../../src/agent/applied-state.js';
import { stateDirProblem } from '../../src/config/fs-checks.js';

const session = new Uint8Array(16).fill(7);

function workspace(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'inosync-state-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a link planted at the old temporary name, or at the state file itself, is not written through', (t) => {
  const dir = workspace(t);
  const state = join(dir, 'state');
  mkdirSync(state, { mode: 0o700 });
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'ROOT-OWNED CONTENT\n');
  symlinkSync(victim, join(state, 'm1.applied.json.tmp'));
  const store = new AppliedStore(state, 'm1');
  store.save({ session, seq: 5 });
  assert.equal(readFileSync(victim, 'utf8'), 'ROOT-OWNED CONTENT\n');
  assert.deepEqual(store.load(), { session, seq: 5 });
  // A link under the final name is replaced, not followed; nor is it read.
  rmSync(join(state, 'm1.applied.json'));
  symlinkSync(victim, join(state, 'm1.applied.json'));
  assert.equal(store.load(), null);
  store.save({ session, seq: 6 });
  assert.equal(readFileSync(victim, 'utf8'), 'ROOT-OWNED CONTENT\n');
  assert.deepEqual(store.load(), { session, seq: 6 });
  assert.deepEqual(readdirSync(state).filter((f) => f.endsWith('.tmp')), ['m1.applied.json.tmp'], 'no temporary file left behind');
});

test('a FIFO under the state file name does not hang the agent', (t) => {
  const dir = workspace(t);
  const store = new AppliedStore(dir, 'm1');
  execFileSync('mkfifo', [join(dir, 'm1.applied.json')]);
  assert.equal(store.load(), null);
});

test('a state directory open to others, or owned by another user, is refused with what to run', (t) => {
  const dir = workspace(t);
  for (const [mode, who] of [[0o777, 'any user'], [0o1777, 'any user'], [0o770, 'its group']] as const) {
    const state = join(dir, `s${mode.toString(8)}`);
    mkdirSync(state);
    chmodSync(state, mode);
    assert.throws(() => new AppliedStore(state, 'm1'), new RegExp(`writable by ${who}.*chmod 700`));
    assert.match(stateDirProblem(state) ?? '', /chmod 700/, 'check-config says it too');
  }
  if (process.geteuid?.() === 0) {
    const theirs = join(dir, 'theirs');
    mkdirSync(theirs, { mode: 0o700 });
    chownSync(theirs, 65534, 65534);
    assert.throws(() => new AppliedStore(theirs, 'm1'), /owned by uid 65534, not by the agent's user \(uid 0\).*chown 0/);
  }
  const ok = join(dir, 'ok');
  assert.doesNotThrow(() => new AppliedStore(ok, 'm1'), 'a directory it creates itself is fine');
  assert.equal(stateDirProblem(ok), null);
});
