// The commands as an operator types them: real processes, real files.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';

const CLI = new URL('../src/cli/', import.meta.url).pathname;
const run = (cli: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}) =>
  spawnSync(process.execPath, [join(CLI, cli), ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...opts.env } });

const dir = mkdtempSync(join(tmpdir(), 'inosync-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('inosync keygen / pubkey', () => {
  test('keygen writes a 0600 key, prints only the public key, refuses to overwrite', () => {
    const key = join(dir, 'k1.key');
    const r = run('inosync.js', ['keygen', key]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean);
    assert.equal(lines.length, 1);
    assert.equal(Buffer.from(lines[0]!, 'base64').length, 32);
    assert.equal(statSync(key).mode & 0o777, 0o600);
    const again = run('inosync.js', ['keygen', key]);
    assert.notEqual(again.status, 0);
    assert.match(again.stderr, /already exists/);
    const pub = run('inosync.js', ['pubkey', key]);
    assert.equal(pub.status, 0);
    assert.equal(pub.stdout.trim(), lines[0]);
  });

  test('pubkey refuses a world-readable key and says how to fix it', () => {
    const key = join(dir, 'k2.key');
    assert.equal(run('inosync.js', ['keygen', key]).status, 0);
    chmodSync(key, 0o644);
    const r = run('inosync.js', ['pubkey', key]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /chmod 600/);
  });
});

describe('inosync check-config', () => {
  test('the commented examples in deploy/examples pass', () => {
    const examples = new URL('../../deploy/examples/', import.meta.url).pathname;
    const r = run('inosync.js', ['check-config', join(examples, 'master.yaml'), join(examples, 'agent.yaml')]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /master\.yaml: ok/);
  });

  test('a bad config names file, line and key, and exits non-zero', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, ['listen: 0.0.0.0:7070', 'key: /nonexistent.key', 'delay: "fast"', 'nodes: []', 'paths:', '  - name: www', '    watch: /tmp', '    bogus: 1', ''].join('\n'));
    const r = run('inosync.js', ['check-config', file]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${file}:3: error: delay`));
    assert.match(r.stderr, /bogus/);
  });
});

describe('daemon flags', () => {
  test('--version and --help', () => {
    for (const cli of ['master.js', 'agent.js', 'inosync.js']) {
      const v = run(cli, ['--version']);
      assert.equal(v.status, 0);
      assert.match(v.stdout, /^\d+\.\d+\.\d+/);
    }
    const h = run('master.js', ['--help']);
    assert.equal(h.status, 0);
    for (const flag of ['-c', '-d', '-p', '-v', '--pidfile', '--log-file']) assert.ok(h.stdout.includes(flag), flag);
  });

  test('a daemon refuses to start on a bad config, before anything runs', () => {
    const r = run('master.js', ['-c', join(dir, 'missing.yaml')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /missing\.yaml/);
  });

  test('-d forks to the background, writes its pidfile, refuses a second start, stops on SIGTERM', async () => {
    const c = await new Cluster({ agents: 1 }).setup();
    try {
      const pidfile = join(c.dir, 'master.pid');
      const logFile = join(c.dir, 'daemon.log');
      const r = run('master.js', ['-c', c.masterConfig, '-d', '--pidfile', pidfile, '--log-file', logFile]);
      assert.equal(r.status, 0, r.stderr);
      const pid = Number(readFileSync(pidfile, 'utf8').trim());
      assert.ok(pid > 0 && pid !== process.pid);
      assert.ok((await c.fetchStatus()) !== null, 'the daemon answers on its status listener');
      const second = run('master.js', ['-c', c.masterConfig, '-d', '--pidfile', pidfile]);
      assert.notEqual(second.status, 0);
      assert.match(second.stderr, /already running as pid/);
      process.kill(pid, 'SIGTERM');
      await waitFor(() => !existsSync(pidfile), 20_000, 'pidfile removed on stop');
      assert.match(readFileSync(logFile, 'utf8'), /master stopped/);
    } finally {
      await c.cleanup();
    }
  });

  test('-p on an agent logs the rsync command it would run and writes nothing', async () => {
    const c = await new Cluster({ agents: 1, agentFlags: ['-p'] }).setup();
    try {
      await fs.writeFile(join(c.origin(), 'dry.txt'), 'dry run');
      await c.start();
      await fs.writeFile(join(c.origin(), 'dry2.txt'), 'dry run 2');
      await waitFor(() => /dry run: would run/.test(readFileSync(c.agents[0]!.log, 'utf8')), 20_000, 'dry-run log line');
      const log = readFileSync(c.agents[0]!.log, 'utf8');
      assert.match(log, /command="?'?rsync /);
      assert.equal(existsSync(join(c.mirror(0), 'dry.txt')), false);
      assert.equal(existsSync(join(c.mirror(0), 'dry2.txt')), false);
    } finally {
      await c.cleanup();
    }
  });
});
