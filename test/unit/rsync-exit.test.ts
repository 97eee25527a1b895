import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { classifyRsyncExit, type RsyncExitKind } from '../../src/rsync/exit-codes.js';

describe('classifyRsyncExit', () => {
  it('reads success as ok', () => {
    assert.deepEqual(classifyRsyncExit(0, null), { kind: 'ok', meaning: 'Success' });
  });

  it('reads partial and vanished transfers as ok with a warning', () => {
    assert.deepEqual(classifyRsyncExit(23, null), { kind: 'partial-ok', meaning: 'Partial transfer due to error' });
    assert.deepEqual(classifyRsyncExit(24, null), { kind: 'partial-ok', meaning: 'Partial transfer due to vanished source files' });
  });

  it('retries what is likely transient', () => {
    for (const code of [3, 5, 6, 10, 11, 12, 14, 20, 21, 22, 30, 35, 255]) {
      assert.equal(classifyRsyncExit(code, null).kind, 'retry', `code ${code}`);
    }
    assert.equal(classifyRsyncExit(30, null).meaning, 'Timeout in data send/receive');
    assert.equal(classifyRsyncExit(35, null).meaning, 'Timeout waiting for daemon connection');
    assert.equal(classifyRsyncExit(10, null).meaning, 'Error in socket I/O');
  });

  it('gives up on the batch when --max-delete stopped it', () => {
    assert.deepEqual(classifyRsyncExit(25, null), { kind: 'fatal', meaning: 'The --max-delete limit stopped deletions' });
  });

  it('gives up on the batch for usage, protocol and unknown errors', () => {
    const expect: Array<[number, string]> = [
      [1, 'Syntax or usage error'],
      [2, 'Protocol incompatibility'],
      [4, 'Requested action not supported'],
      [13, 'Errors with program diagnostics'],
      [15, 'sibling process crashed'],
      [16, 'sibling process terminated abnormally'],
      [19, 'received SIGUSR1'],
      [127, 'remote command not found'],
      [7, 'unexplained error (code 7)'],
      [-1, 'unexplained error (code -1)'],
    ];
    for (const [code, meaning] of expect) assert.deepEqual(classifyRsyncExit(code, null), { kind: 'fatal', meaning }, `code ${code}`);
  });

  it('retries a run killed by a signal', () => {
    assert.deepEqual(classifyRsyncExit(null, 'SIGKILL'), { kind: 'retry', meaning: 'killed by signal SIGKILL' });
    assert.deepEqual(classifyRsyncExit(null, 'SIGTERM'), { kind: 'retry', meaning: 'killed by signal SIGTERM' });
  });

  it('treats a missing code and signal as fatal', () => {
    assert.equal(classifyRsyncExit(null, null).kind, 'fatal');
  });

  it('hands out copies, so callers cannot corrupt the table', () => {
    const a = classifyRsyncExit(0, null);
    (a as { kind: RsyncExitKind }).kind = 'fatal';
    assert.equal(classifyRsyncExit(0, null).kind, 'ok');
  });

  it('matches what real rsync exits with for a usage error', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync('/usr/bin/rsync', ['--no-such-option']);
    assert.equal(r.status, 1);
    assert.equal(classifyRsyncExit(r.status, r.signal).kind, 'fatal');
  });
});
