// Reading /proc for the rsync daemon's supervisor: the parsing and the orphan
// decision, table-driven on /proc content given as strings.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  daemonConfigOf, isDead, liveGroupMembers, orphanDir, orphanedDaemons, ownerFileText, parseOwnerFile, parseProcStat, realUidOf, type DaemonCandidate,
} from '../../src/master/rsyncd/proc-scan.js';

describe('parseProcStat', () => {
  const cases: [string, string, { state: string; ppid: number; pgrp: number }][] = [
    ['a plain name', '1234 (rsync) S 1 1234 1234 0 -1 4194560', { state: 'S', ppid: 1, pgrp: 1234 }],
    ['spaces and parentheses in the name', '77 (my (odd) name) ) Z 12 70 70 0', { state: 'Z', ppid: 12, pgrp: 70 }],
    ['a running process', '5 (node) R 4 5 5', { state: 'R', ppid: 4, pgrp: 5 }],
  ];
  for (const [what, text, want] of cases) test(what, () => assert.deepEqual(parseProcStat(text), want));

  test('zombies and dying processes are dead, others are not', () => {
    assert.equal(isDead({ state: 'Z', ppid: 1, pgrp: 1 }), true);
    assert.equal(isDead({ state: 'X', ppid: 1, pgrp: 1 }), true);
    for (const state of ['R', 'S', 'D', 'T']) assert.equal(isDead({ state, ppid: 1, pgrp: 1 }), false, state);
  });
});

describe('owner file', () => {
  test('round-trips the pid and the front port', () => {
    assert.deepEqual(parseOwnerFile(ownerFileText(4242, 8731)), { pid: 4242, front: '8731' });
    assert.deepEqual(parseOwnerFile(ownerFileText(4242, undefined)), { pid: 4242, front: '' });
  });
  test('garbage gives a pid that is not a number', () => {
    assert.ok(Number.isNaN(parseOwnerFile('not a pid\n').pid));
  });
});

describe('daemonConfigOf', () => {
  const cases: [string[], string | null][] = [
    [['rsync', '--daemon', '--config=/tmp/inosync-rsyncd-Ab12Cd/rsyncd.conf'], '/tmp/inosync-rsyncd-Ab12Cd/rsyncd.conf'],
    [['rsync', '--daemon', '--config=/etc/rsyncd.conf'], null],
    [['rsync', '--daemon', '--config=/tmp/inosync-rsyncd-Ab12Cd/other.conf'], null],
    [['rsync', '--daemon', '--config=/tmp/inosync-rsyncd-../rsyncd.conf'], null],
    [['rsync', '--daemon'], null],
  ];
  for (const [argv, want] of cases) test(argv.join(' '), () => assert.equal(daemonConfigOf(argv), want));
});

describe('orphanDir', () => {
  const DIR = '/tmp/inosync-rsyncd-Xy9';
  const PORT = 8730;
  /** the master's own uid (root here); the attacker is a local user */
  const ME = 0;
  const OTHER = 1000;
  const privateDir = { uid: ME, mode: 0o40700, isDirectory: true };
  const daemon = (over: Partial<DaemonCandidate> & { ppid?: number; pgrp?: number; state?: string } = {}): DaemonCandidate => ({
    pid: 500,
    argv: over.argv ?? ['rsync', '--daemon', '--no-detach', `--config=${DIR}/rsyncd.conf`, `--port=${PORT}`, '--address=127.0.0.1'],
    stat: { state: over.state ?? 'S', ppid: over.ppid ?? 400, pgrp: over.pgrp ?? 500 },
    owner: over.owner === undefined ? ownerFileText(300, undefined) : over.owner,
    uid: over.uid ?? ME,
    dir: over.dir === undefined ? privateDir : over.dir,
  });
  const cases: [string, DaemonCandidate, number | undefined, string | null][] = [
    ['its master (the owner) is gone: an orphan', daemon(), undefined, DIR],
    ['its master is its parent: alive, not an orphan', daemon({ ppid: 300 }), undefined, null],
    ['a connection child (not the group leader)', daemon({ pgrp: 499 }), undefined, null],
    ['a zombie', daemon({ state: 'Z' }), undefined, null],
    ['another port', daemon({ argv: ['rsync', '--daemon', `--config=${DIR}/rsyncd.conf`, '--port=9999'] }), undefined, null],
    ['not a daemon', daemon({ argv: ['rsync', `--config=${DIR}/rsyncd.conf`, `--port=${PORT}`] }), undefined, null],
    ['not our runtime dir', daemon({ argv: ['rsync', '--daemon', '--config=/etc/rsyncd.conf', `--port=${PORT}`] }), undefined, null],
    ['behind our TLS front, on a port of its own', daemon({ argv: ['rsync', '--daemon', `--config=${DIR}/rsyncd.conf`, '--port=40001'], owner: ownerFileText(300, 8731) }), 8731, DIR],
    ['behind another front', daemon({ argv: ['rsync', '--daemon', `--config=${DIR}/rsyncd.conf`, '--port=40001'], owner: ownerFileText(300, 8732) }), 8731, null],
    ['no owner file, adopted by init', daemon({ owner: null, ppid: 1 }), undefined, DIR],
    ['no owner file, parent still alive', daemon({ owner: null, ppid: 400 }), undefined, null],
    // A local user's process naming the master's live runtime dir must not make the master delete it.
    ['a process of another user naming our dir', daemon({ uid: OTHER }), undefined, null],
    ['our process, but the dir belongs to another user', daemon({ dir: { ...privateDir, uid: OTHER } }), undefined, null],
    ['our process, but the dir is open to others', daemon({ dir: { ...privateDir, mode: 0o40755 } }), undefined, null],
    ['our process, but the "dir" is a symlink', daemon({ dir: { uid: ME, mode: 0o120777, isDirectory: false } }), undefined, null],
    ['our process, its dir already cleaned away: still ours to kill', daemon({ dir: null }), undefined, DIR],
  ];
  for (const [what, c, front, want] of cases) test(what, () => assert.equal(orphanDir(c, PORT, front, ME), want));

  test('the real uid is read from /proc/PID/status', () => {
    assert.equal(realUidOf('Name:\trsync\nUid:\t1000\t0\t0\t0\nGid:\t5\n'), 1000);
    assert.ok(Number.isNaN(realUidOf('Name:\trsync\n')));
    assert.equal(realUidOf(readFileSync('/proc/self/status', 'utf8')), process.getuid!());
  });
});

describe('the /proc scans', () => {
  test('this process is a live member of its own group', () => {
    const pgrp = parseProcStat(readFileSync('/proc/self/stat', 'utf8')).pgrp;
    assert.ok((liveGroupMembers(pgrp) ?? 0) >= 1);
  });
  test('no orphaned daemon on a port nobody uses', () => {
    assert.deepEqual(orphanedDaemons(1, undefined), []);
  });
});
