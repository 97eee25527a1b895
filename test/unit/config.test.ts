import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAgentConfig } from '../../src/config/agent.js';
import { ConfigError, formatProblem, type ConfigProblem } from '../../src/config/errors.js';
import { checkConfigFile, detectConfigKind, loadAgentConfig, loadMasterConfig } from '../../src/config/load.js';
import { parseMasterConfig } from '../../src/config/master.js';
import { rsyncExtraProblem } from '../../src/config/rsync-extra.js';
import { isPublicKeyB64 } from '../../src/protocol/keys.js';
import type { AgentConfig, MasterConfig } from '../../src/config/types.js';

const K1 = 'ED6dD44WKxdpn+aM9gRlSC5mtSQ6cI47SBSanev93UQ=';
const K2 = 'uRPdB6PR37oq0kz6WJZraQ5gRs0ZJCqiK7k47d0zsos=';
const K3 = '7Q2BCNL7BEckeemCJGfCQZXmQB6x8VSYuTAFQXr46P8=';
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

let root: string;
/** A fresh directory holding a 0600 key file and a www/ directory. */
function workspace(): string {
  const dir = fs.mkdtempSync(path.join(root, 'ws-'));
  fs.chmodSync(dir, 0o755);
  fs.writeFileSync(path.join(dir, 'secret.key'), 'not checked here\n', { mode: 0o600 });
  fs.chmodSync(path.join(dir, 'secret.key'), 0o600);
  fs.mkdirSync(path.join(dir, 'www'));
  return dir;
}

function write(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

function errors(problems: ConfigProblem[]): ConfigProblem[] {
  return problems.filter((p) => p.severity === 'error');
}

/** The single problem for `key`, failing with every problem listed otherwise. */
function problemAt(problems: ConfigProblem[], key: string | undefined): ConfigProblem {
  const found = problems.filter((p) => p.key === key);
  assert.equal(found.length, 1, `expected one problem at ${String(key)}, got:\n${problems.map(formatProblem).join('\n')}`);
  return found[0]!;
}

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'inosync-config-test-'));
  // A stand-in rsync in PATH keeps the default binary check independent of the host.
  const bin = path.join(root, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'rsync'), '#!/bin/sh\n', { mode: 0o755 });
  // And a stand-in getent that knows the default rsync.user, absent on a fresh machine.
  fs.writeFileSync(path.join(bin, 'getent'), [
    '#!/bin/sh',
    'case "$1:$2" in',
    '  passwd:inosync) echo "inosync:x:64999:64999::/nonexistent:/usr/sbin/nologin" ;;',
    '  *) exec /usr/bin/getent "$@" ;;',
    'esac',
    '',
  ].join('\n'), { mode: 0o755 });
  // The default rsync.user must be able to read the watched trees made below.
  fs.chmodSync(root, 0o755);
  process.env['PATH'] = `${bin}${path.delimiter}${process.env['PATH'] ?? ''}`;
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

const MINIMAL_MASTER = `key: secret.key
nodes:
  - name: mirror1
    key: ${K1}
paths:
  - name: www
    watch: www/
`;

function masterDefaults(dir: string, file: string): MasterConfig {
  return {
    file,
    listen: { host: '0.0.0.0', port: 7070 },
    key: path.join(dir, 'secret.key'),
    rsync: { listen: { host: '0.0.0.0', port: 8730 }, binary: 'rsync', tls: false, user: 'inosync' },
    status: { listen: { host: '127.0.0.1', port: 7071 } },
    delay: 0.05,
    events: ['create', 'modify', 'delete', 'move', 'attrib'],
    watcher: 'inotify',
    reconcile: 3600,
    maxPending: 10000,
    nodes: [{ name: 'mirror1', key: K1 }],
    paths: [{ name: 'www', watch: path.join(dir, 'www'), exclude: [] }],
  };
}

describe('valid master configs', () => {
  test('a minimal YAML config gets every default, with relative paths resolved against its directory', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', MINIMAL_MASTER);
    const { config, problems } = parseMasterConfig(file);
    assert.deepEqual(problems, []);
    assert.deepEqual(config, masterDefaults(dir, file));
  });

  test('every key set explicitly, in YAML', () => {
    const dir = workspace();
    fs.mkdirSync(path.join(dir, 'data'));
    fs.writeFileSync(path.join(dir, 'data', '.inosync-root'), '');
    fs.writeFileSync(path.join(dir, 'tls.crt'), 'cert');
    fs.writeFileSync(path.join(dir, 'tls.key'), 'key', { mode: 0o600 });
    const file = write(dir, 'master.yaml', `
listen: "[::1]:9000"
key: ${path.join(dir, 'secret.key')}
tls:
  cert: tls.crt
  key: ./tls.key
rsync:
  listen: 127.0.0.1:8000
  binary: ${process.execPath}
  tls: true
  user: inosync
  group: "64999"
status:
  listen: localhost:9001
delay: 2
events: [create, delete]
watcher: parcel
reconcile: 0
maxPending: 16
nodes:
  - name: mirror1
    key: ${K1}
  - name: mirror-2.example
    key: ${K2}
paths:
  - name: www
    watch: www
    exclude: ["/localhost/", "*.swp"]
  - name: data
    watch: ${path.join(dir, 'data')}/
    marker: .inosync-root
`);
    const { config, problems } = parseMasterConfig(file);
    assert.deepEqual(problems, []);
    assert.deepEqual(config, {
      file,
      listen: { host: '::1', port: 9000 },
      key: path.join(dir, 'secret.key'),
      tls: { cert: path.join(dir, 'tls.crt'), key: path.join(dir, 'tls.key') },
      rsync: { listen: { host: '127.0.0.1', port: 8000 }, binary: process.execPath, tls: true, user: 'inosync', group: '64999' },
      status: { listen: { host: 'localhost', port: 9001 } },
      delay: 2,
      events: ['create', 'delete'],
      watcher: 'parcel',
      reconcile: 0,
      maxPending: 16,
      nodes: [{ name: 'mirror1', key: K1 }, { name: 'mirror-2.example', key: K2 }],
      paths: [
        { name: 'www', watch: path.join(dir, 'www'), exclude: ['/localhost/', '*.swp'] },
        { name: 'data', watch: path.join(dir, 'data'), exclude: [], marker: '.inosync-root' },
      ],
    } satisfies MasterConfig);
  });

  test('JSON is read as YAML', () => {
    const dir = workspace();
    const file = write(dir, 'master.json', JSON.stringify({
      key: 'secret.key',
      nodes: [{ name: 'mirror1', key: K1 }],
      paths: [{ name: 'www', watch: 'www/' }],
    }, null, 2));
    const { config, problems } = parseMasterConfig(file);
    assert.deepEqual(problems, []);
    assert.deepEqual(config, masterDefaults(dir, file));
  });

  test('empty optional sections fall back to their defaults', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}rsync:\n  # binary: /usr/bin/rsync\nstatus:\ntls:\n`);
    const { config, problems } = parseMasterConfig(file);
    assert.deepEqual(problems, []);
    assert.deepEqual(config, masterDefaults(dir, file));
  });

  test('watch "/" stays "/"', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace('watch: www/', 'watch: /'));
    assert.equal(parseMasterConfig(file).config?.paths[0]?.watch, '/');
  });
});

const MINIMAL_AGENT = `name: mirror1
key: secret.key
master:
  url: ws://origin.example
  key: ${K1}
state: state
paths:
  - name: www
    target: www/
`;

function agentDefaults(dir: string, file: string): AgentConfig {
  return {
    file,
    name: 'mirror1',
    key: path.join(dir, 'secret.key'),
    master: { url: 'ws://origin.example:7070', key: K1 },
    state: path.join(dir, 'state'),
    rsync: { binary: 'rsync', bwlimit: 0, extra: [], timeout: 60 },
    paths: [{ name: 'www', target: path.join(dir, 'www'), maxDelete: 0, devices: false, specials: false, setuid: false }],
  };
}

describe('valid agent configs', () => {
  test('a minimal YAML config gets every default; the url gets the default port', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', MINIMAL_AGENT);
    const { config, problems } = parseAgentConfig(file);
    assert.deepEqual(problems, []);
    assert.deepEqual(config, agentDefaults(dir, file));
  });

  test('state defaults to /var/lib/inosync', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', MINIMAL_AGENT.replace('state: state\n', ''));
    const { config, problems } = parseAgentConfig(file, { fsChecksAsWarnings: true });
    assert.deepEqual(errors(problems), []);
    assert.equal(config?.state, '/var/lib/inosync');
  });

  test('every key set explicitly, in JSON', () => {
    const dir = workspace();
    fs.writeFileSync(path.join(dir, 'ca.pem'), 'ca');
    fs.mkdirSync(path.join(dir, 'data'));
    const file = write(dir, 'agent.json', JSON.stringify({
      name: 'mirror1',
      key: 'secret.key',
      master: { url: 'wss://[::1]:8443/inosync', key: K1, ca: 'ca.pem', rsyncHost: 'rsync.origin.example' },
      state: './state/',
      rsync: { binary: process.execPath, bwlimit: 500, extra: ['--compress', '-essh', '--chmod=D755,F644'], timeout: 0 },
      paths: [{ name: 'www', target: 'www' }, { name: 'data', target: path.join(dir, 'data'), maxDelete: 100 }],
    }, null, 2));
    const { config, problems } = parseAgentConfig(file);
    assert.deepEqual(problems, []);
    assert.deepEqual(config, {
      file,
      name: 'mirror1',
      key: path.join(dir, 'secret.key'),
      master: { url: 'wss://[::1]:8443/inosync', key: K1, ca: path.join(dir, 'ca.pem'), rsyncHost: 'rsync.origin.example' },
      state: path.join(dir, 'state'),
      rsync: { binary: process.execPath, bwlimit: 500, extra: ['--compress', '-essh', '--chmod=D755,F644'], timeout: 0 },
      paths: [
        { name: 'www', target: path.join(dir, 'www'), maxDelete: 0, devices: false, specials: false, setuid: false },
        { name: 'data', target: path.join(dir, 'data'), maxDelete: 100, devices: false, specials: false, setuid: false },
      ],
    } satisfies AgentConfig);
  });

  test('an explicit scheme-default port is kept', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', MINIMAL_AGENT.replace('ws://origin.example', 'ws://origin.example:80'));
    assert.equal(parseAgentConfig(file).config?.master.url, 'ws://origin.example:80');
  });
});

describe('structural problems point at the line and key', () => {
  test('unknown keys, at the top level and nested', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}rsync:\n  listn: 0.0.0.0:1\nmaxpending: 20\n`);
    const { config, problems } = parseMasterConfig(file);
    assert.equal(config, null);
    const nested = problemAt(problems, 'rsync.listn');
    assert.equal(nested.line, 9);
    assert.equal(nested.severity, 'error');
    assert.match(nested.reason, /unknown key "listn"; did you mean "listen"\?/);
    const top = problemAt(problems, 'maxpending');
    assert.equal(top.line, 10);
    assert.match(top.reason, /did you mean "maxPending"/);
  });

  test('an unknown key inside a list entry', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}    exlude: [a]\n`);
    const p = problemAt(parseMasterConfig(file).problems, 'paths[0].exlude');
    assert.equal(p.line, 8);
    assert.match(p.reason, /allowed here: name, watch, exclude, marker/);
  });

  test('a quoted number is the wrong type', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `delay: "0.05"\n${MINIMAL_MASTER}`);
    const p = problemAt(parseMasterConfig(file).problems, 'delay');
    assert.equal(p.line, 1);
    assert.match(p.reason, /expected a number, found the string "0\.05"; remove the quotes/);
  });

  test('wrong types: a number for host:port, a string for a list, a fraction for an integer', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `listen: 7070\nevents: create\nmaxPending: 100.5\n${MINIMAL_MASTER}`);
    const { problems } = parseMasterConfig(file);
    assert.match(problemAt(problems, 'listen').reason, /expected a string, found the number 7070/);
    assert.equal(problemAt(problems, 'events').line, 2);
    assert.match(problemAt(problems, 'events').reason, /expected a list/);
    assert.match(problemAt(problems, 'maxPending').reason, /not a whole number/);
  });

  test('out-of-range numbers and values outside an enumeration', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `delay: 3601\nmaxPending: 15\nwatcher: fanotify\nevents: []\n${MINIMAL_MASTER}`);
    const { problems } = parseMasterConfig(file);
    assert.match(problemAt(problems, 'delay').reason, /at most 3600/);
    assert.match(problemAt(problems, 'maxPending').reason, /at least 16/);
    assert.match(problemAt(problems, 'watcher').reason, /use one of: inotify, chokidar, parcel/);
    assert.match(problemAt(problems, 'events').reason, /at least 1/);
  });

  test('a repeated event', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `events:\n  - create\n  - modify\n  - create\n${MINIMAL_MASTER}`);
    const p = problemAt(parseMasterConfig(file).problems, 'events[2]');
    assert.equal(p.line, 4);
    assert.match(p.reason, /already listed/);
  });

  test('missing required keys are reported at their parent mapping', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `listen: 0.0.0.0:7070
nodes:
  - name: mirror1
    key: ${K1}
paths:
  - name: www
    exclude: []
tls:
  cert: x.crt
`);
    const { problems } = parseMasterConfig(file);
    const key = problemAt(problems, 'key');
    assert.equal(key.line, 1);
    assert.match(key.reason, /required key "key" is missing; add it/);
    const watch = problemAt(problems, 'paths[0].watch');
    assert.equal(watch.line, 6);
    assert.match(watch.reason, /required key "watch" is missing/);
    assert.equal(problemAt(problems, 'tls.key').line, 8);
  });

  test('a required key without a value', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER.replace(/^key: secret.key$/m, 'key:')}`);
    const p = problemAt(parseMasterConfig(file).problems, 'key');
    assert.equal(p.line, 1);
    assert.match(p.reason, /has no value/);
  });

  test('empty nodes and paths lists', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', 'key: secret.key\nnodes: []\npaths: []\n');
    const { problems } = parseMasterConfig(file);
    assert.equal(problemAt(problems, 'nodes').line, 2);
    assert.equal(problemAt(problems, 'paths').line, 3);
  });

  for (const [value, reason] of [
    ['localhost', /has no port/],
    ['0.0.0.0:70000', /port 70000 is out of range/],
    ['::1:7070', /IPv6 address must be in brackets/],
    ['"[::1]"', /has no port/],
    ['"[nope]:1"', /not an IPv6 address/],
    ['999.0.0.1:80', /not a valid IPv4 address/],
    ['bad host:80', /not a valid host name/],
    [':80', /host is empty/],
  ] as const) {
    test(`bad host:port ${value}`, () => {
      const dir = workspace();
      const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}status:\n  listen: ${value}\n`);
      const p = problemAt(parseMasterConfig(file).problems, 'status.listen');
      assert.equal(p.line, 9);
      assert.match(p.reason, reason);
    });
  }

  test('two listeners on one port', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}status:\n  listen: 127.0.0.1:7070\n`);
    const p = problemAt(parseMasterConfig(file).problems, 'status.listen');
    assert.match(p.reason, /port 7070 is also used by listen/);
  });
});

describe('YAML-level problems', () => {
  test('a syntax error carries its line', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}    exclude: [a, b\nwatcher: parcel\n`);
    const { config, problems } = parseMasterConfig(file);
    assert.equal(config, null);
    assert.ok(problems.length >= 1);
    assert.match(problems[0]!.reason, /^YAML syntax error: /);
    assert.ok(problems[0]!.line === 8 || problems[0]!.line === 9, `line ${String(problems[0]!.line)}`);
  });

  test('an unquoted IPv6 listener is a syntax error, not a silent list', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `listen: [::1]:7070\n${MINIMAL_MASTER}`);
    const { problems } = parseMasterConfig(file);
    assert.equal(problems[0]?.line, 1);
  });

  test('a duplicate key is refused, naming the key', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}    watch: other/\n`);
    const { config, problems } = parseMasterConfig(file);
    assert.equal(config, null);
    const p = problemAt(problems, 'paths[0].watch');
    assert.equal(p.line, 8);
    assert.match(p.reason, /appears twice/);
  });

  test('a duplicate key in JSON', () => {
    const dir = workspace();
    const file = write(dir, 'master.json', '{\n  "key": "a",\n  "key": "b"\n}\n');
    const p = problemAt(parseMasterConfig(file).problems, 'key');
    assert.equal(p.line, 3);
  });

  test('documents that are not mappings', () => {
    const dir = workspace();
    for (const [text, reason] of [['', /is empty/], ['- a\n- b\n', /is a list/], ['just text\n', /single value/]] as const) {
      const { config, problems } = parseMasterConfig(write(dir, 'x.yaml', text));
      assert.equal(config, null);
      assert.equal(problems.length, 1);
      assert.match(problems[0]!.reason, reason);
    }
  });

  test('more than one document', () => {
    const dir = workspace();
    const { problems } = parseMasterConfig(write(dir, 'x.yaml', `${MINIMAL_MASTER}---\nkey: x\n`));
    assert.match(problems[0]!.reason, /more than one YAML document/);
  });

  test('a file over 1 MiB is refused unread', () => {
    const dir = workspace();
    const file = write(dir, 'big.yaml', `# ${'x'.repeat(1024 * 1024)}\n${MINIMAL_MASTER}`);
    const { problems } = parseMasterConfig(file);
    assert.equal(problems.length, 1);
    assert.equal(problems[0]!.line, undefined);
    assert.match(problems[0]!.reason, /more than the 1048576 allowed/);
  });

  test('a missing config file', () => {
    const dir = workspace();
    const { problems } = parseMasterConfig(path.join(dir, 'nope.yaml'));
    assert.match(problems[0]!.reason, /does not exist/);
  });
});

describe('names and keys', () => {
  test('duplicate node names, node keys and path names are reported at the repeat', () => {
    const dir = workspace();
    fs.mkdirSync(path.join(dir, 'other'));
    const file = write(dir, 'master.yaml', `key: secret.key
nodes:
  - name: mirror1
    key: ${K1}
  - name: mirror2
    key: ${K1}
  - name: mirror1
    key: ${K3}
paths:
  - name: www
    watch: www
  - name: www
    watch: other
`);
    const { config, problems } = parseMasterConfig(file);
    assert.notEqual(config, null);
    const key = problemAt(problems, 'nodes[1].key');
    assert.equal(key.line, 6);
    assert.match(key.reason, /node key ".*" is already used by nodes\[0\] \(line 4\)/);
    const name = problemAt(problems, 'nodes[2].name');
    assert.equal(name.line, 7);
    assert.match(name.reason, /node name "mirror1" is already used by nodes\[0\] \(line 3\)/);
    const pathName = problemAt(problems, 'paths[1].name');
    assert.equal(pathName.line, 12);
    assert.throws(() => loadMasterConfig(file), ConfigError);
  });

  test('duplicate path names on the agent', () => {
    const dir = workspace();
    fs.mkdirSync(path.join(dir, 'b'));
    const file = write(dir, 'agent.yaml', `${MINIMAL_AGENT}  - name: www\n    target: b\n`);
    assert.equal(problemAt(parseAgentConfig(file).problems, 'paths[1].name').line, 10);
  });

  for (const [bad, reason] of [
    ['has space', /not a valid name/],
    ['..', /path component/],
    ['x'.repeat(65), /1 to 64/],
  ] as const) {
    test(`name "${bad.slice(0, 10)}" is refused`, () => {
      const dir = workspace();
      const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace('name: www', `name: "${bad}"`));
      const p = problemAt(parseMasterConfig(file).problems, 'paths[0].name');
      assert.equal(p.line, 6);
      assert.match(p.reason, reason);
    });
  }

  for (const [bad, reason] of [
    ['notbase64!', /not valid base64/],
    ['ED6d D44W', /whitespace/],
    [K1.slice(0, -1), /not valid base64/],
    ['AAAA', /decodes to 3 bytes, but a public key has 32/],
    [Buffer.alloc(64, 1).toString('base64'), /decodes to 64 bytes/],
    [K1.replace('+', '-'), /URL-safe/],
    [K1.slice(0, 42) + 'R=', /not canonical/],
  ] as const) {
    test(`public key ${bad.slice(0, 12)}… is refused`, () => {
      const dir = workspace();
      const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace(K1, `"${bad}"`));
      const p = problemAt(parseMasterConfig(file).problems, 'nodes[0].key');
      assert.equal(p.line, 4);
      assert.match(p.reason, reason);
    });
  }

  test('the agent checks the master key too', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', MINIMAL_AGENT.replace(K1, 'AAAA'));
    assert.equal(problemAt(parseAgentConfig(file).problems, 'master.key').line, 5);
  });

  test('isPublicKeyB64', () => {
    assert.equal(isPublicKeyB64(K2), true);
    assert.equal(isPublicKeyB64('AAAA'), false);
    assert.equal(isPublicKeyB64(42), false);
  });
});

describe('paths', () => {
  test('relative paths resolve against the config directory, whatever the working directory', () => {
    const dir = workspace();
    fs.mkdirSync(path.join(dir, 'conf'));
    fs.renameSync(path.join(dir, 'secret.key'), path.join(dir, 'conf', 'secret.key'));
    const file = write(path.join(dir, 'conf'), 'master.yaml', MINIMAL_MASTER.replace('watch: www/', 'watch: ../www/./'));
    const cwd = process.cwd();
    process.chdir(os.tmpdir());
    try {
      const { config, problems } = parseMasterConfig(path.relative(os.tmpdir(), file));
      assert.deepEqual(problems, []);
      assert.equal(config?.file, file);
      assert.equal(config?.key, path.join(dir, 'conf', 'secret.key'));
      assert.equal(config?.paths[0]?.watch, path.join(dir, 'www'));
    } finally {
      process.chdir(cwd);
    }
  });

  test('"~" is not expanded', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace('key: secret.key', 'key: ~/secret.key'));
    assert.match(problemAt(parseMasterConfig(file).problems, 'key').reason, /only expanded by a shell/);
  });

  test('a watch path inside another is refused at the later entry', () => {
    const dir = workspace();
    fs.mkdirSync(path.join(dir, 'www', 'sub'));
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}  - name: sub
    watch: ${path.join(dir, 'www', 'sub')}
  - name: same
    watch: ./www
`);
    const { problems } = parseMasterConfig(file);
    const inner = problemAt(problems, 'paths[1].watch');
    assert.equal(inner.line, 9);
    assert.match(inner.reason, /lies inside .* of paths\[0\] \(line 7\)/);
    assert.match(problemAt(problems, 'paths[2].watch').reason, /is the same directory as/);
  });

  test('a watch path containing an earlier one', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}  - name: all\n    watch: .\n`);
    // (rsync.user cannot read the 0600 key file in it either: a second problem there)
    const found = parseMasterConfig(file).problems.filter((p) => p.key === 'paths[1].watch' && /contains/.test(p.reason));
    assert.equal(found.length, 1);
  });

  test('agent targets must not nest, nor hold the state directory', () => {
    const dir = workspace();
    fs.mkdirSync(path.join(dir, 'www', 'in'));
    const file = write(dir, 'agent.yaml', `${MINIMAL_AGENT.replace('state: state', 'state: www/in/state')}  - name: inner
    target: www/in
`);
    const { problems } = parseAgentConfig(file);
    assert.equal(problemAt(problems, 'paths[1].target').line, 11);
    assert.ok(problems.some((p) => p.key === 'state' && /overlaps/.test(p.reason)));
  });

  test('exclude patterns must be usable by rsync', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}    exclude:\n      - ok\n      - ""\n      - "a\\nb"\n      - "- x"\n`);
    const { problems } = parseMasterConfig(file);
    assert.equal(problemAt(problems, 'paths[0].exclude[1]').line, 10);
    assert.match(problemAt(problems, 'paths[0].exclude[1]').reason, /must not be empty/);
    assert.match(problemAt(problems, 'paths[0].exclude[2]').reason, /newline/);
    assert.match(problemAt(problems, 'paths[0].exclude[3]').reason, /cannot be used as an rsync exclude/);
  });

  test('an exclude that repeats the watch directory gets a hint', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}    exclude: ["${path.join(dir, 'www')}/localhost/"]\n`);
    const p = problemAt(parseMasterConfig(file).problems, 'paths[0].exclude[0]');
    assert.equal(p.severity, 'warning');
    assert.match(p.reason, /write "\/localhost\/"/);
  });

  test('a marker must be a relative path', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}    marker: /etc/passwd\n`);
    assert.match(problemAt(parseMasterConfig(file).problems, 'paths[0].marker').reason, /not a relative path/);
  });
});

describe('filesystem checks', () => {
  test('a missing watch directory', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace('watch: www/', 'watch: missing'));
    const { config, problems } = parseMasterConfig(file);
    assert.notEqual(config, null);
    const p = problemAt(problems, 'paths[0].watch');
    assert.equal(p.line, 7);
    assert.equal(p.severity, 'error');
    assert.match(p.reason, /does not exist/);
  });

  test('a file where a watch directory should be', () => {
    const dir = workspace();
    write(dir, 'plain', 'x');
    const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace('watch: www/', 'watch: plain'));
    assert.match(problemAt(parseMasterConfig(file).problems, 'paths[0].watch').reason, /is a file, not a directory/);
  });

  test('a watch path below a file', () => {
    const dir = workspace();
    write(dir, 'plain', 'x');
    const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace('watch: www/', 'watch: plain/sub'));
    assert.match(problemAt(parseMasterConfig(file).problems, 'paths[0].watch').reason, /not a directory/);
  });

  test('a missing agent target and state parent', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', MINIMAL_AGENT.replace('target: www/', 'target: gone').replace('state: state', 'state: no/such/state'));
    const { problems } = parseAgentConfig(file);
    assert.match(problemAt(problems, 'paths[0].target').reason, /does not exist/);
    assert.match(problemAt(problems, 'state').reason, /mkdir -p/);
  });

  test('a key file readable by others', () => {
    const dir = workspace();
    const keyFile = path.join(dir, 'secret.key');
    fs.chmodSync(keyFile, 0o644);
    const file = write(dir, 'master.yaml', MINIMAL_MASTER);
    const p = problemAt(parseMasterConfig(file).problems, 'key');
    assert.equal(p.line, 1);
    assert.equal(p.severity, 'error');
    assert.match(p.reason, /mode 644/);
    assert.ok(p.reason.endsWith(`run: chmod 600 ${keyFile}`), p.reason);
  });

  test('a missing key file, a directory as key file, a symlinked key', () => {
    const dir = workspace();
    fs.symlinkSync(path.join(dir, 'secret.key'), path.join(dir, 'link.key'));
    for (const [key, reason] of [['none.key', /inosync keygen/], ['www', /not a regular file/], ['link.key', /symlink/]] as const) {
      const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace('key: secret.key', `key: ${key}`));
      assert.match(problemAt(parseMasterConfig(file).problems, 'key').reason, reason);
    }
  });

  test('a TLS private key readable by others is an error, by its group a warning, through a symlink fine', () => {
    const dir = workspace();
    fs.writeFileSync(path.join(dir, 'tls.crt'), 'cert');
    const keyFile = path.join(dir, 'tls.key');
    fs.writeFileSync(keyFile, 'key');
    fs.symlinkSync(keyFile, path.join(dir, 'live.key'));
    const parse = (key: string, opts = {}) => parseMasterConfig(
      write(dir, 'master.yaml', `${MINIMAL_MASTER}tls:\n  cert: tls.crt\n  key: ${key}\n`), opts).problems;
    for (const [mode, severity, reason] of [
      [0o644, 'error', /accessible by others \(mode 644\).*run: chmod 600/],
      [0o604, 'error', /accessible by others \(mode 604\)/],
      [0o602, 'error', /accessible by others \(mode 602\)/],
      [0o640, 'warning', /accessible by its group \(gid \d+, mode 640\).*chmod 600/],
      [0o660, 'warning', /mode 660/],
    ] as const) {
      fs.chmodSync(keyFile, mode);
      for (const key of ['tls.key', 'live.key']) {
        const p = problemAt(parse(key), 'tls.key');
        assert.equal(p.severity, severity, `${mode.toString(8)} ${key}`);
        assert.equal(p.line, 10);
        assert.match(p.reason, reason);
      }
    }
    fs.chmodSync(keyFile, 0o644);
    assert.equal(problemAt(parse('tls.key', { fsChecksAsWarnings: true }), 'tls.key').severity, 'warning', 'check-config on another machine');
    fs.chmodSync(keyFile, 0o600);
    assert.deepEqual(parse('tls.key'), []);
    assert.deepEqual(parse('live.key'), []);
    assert.throws(() => loadMasterConfig(write(dir, 'm.yaml', `${MINIMAL_MASTER}tls:\n  cert: tls.crt\n  key: www\n`)), /not a regular file/);
  });

  test('missing TLS files and an rsync binary not in PATH', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}tls:\n  cert: c.pem\n  key: k.pem\nrsync:\n  binary: no-such-rsync-binary\n`);
    const { problems } = parseMasterConfig(file);
    assert.equal(problemAt(problems, 'tls.cert').line, 9);
    assert.equal(problemAt(problems, 'tls.key').line, 10);
    assert.match(problemAt(problems, 'rsync.binary').reason, /not found in PATH/);
  });

  test('rsync over TLS: on by default with tls, refused without a certificate', () => {
    const dir = workspace();
    const plain = parseMasterConfig(write(dir, 'plain.yaml', MINIMAL_MASTER), { fsChecksAsWarnings: true });
    assert.equal(plain.config?.rsync.tls, false);
    const withTls = `${MINIMAL_MASTER}tls:\n  cert: c.pem\n  key: k.pem\n`;
    const on = parseMasterConfig(write(dir, 'on.yaml', withTls), { fsChecksAsWarnings: true });
    assert.equal(on.config?.rsync.tls, true, 'a certificate at hand wraps rsync too');
    const off = parseMasterConfig(write(dir, 'off.yaml', `${withTls}rsync:\n  tls: false\n`), { fsChecksAsWarnings: true });
    assert.equal(off.config?.rsync.tls, false, 'unless the operator says otherwise');
    const bad = parseMasterConfig(write(dir, 'bad.yaml', `${MINIMAL_MASTER}rsync:\n  tls: true\n`));
    const p = problemAt(bad.problems, 'rsync.tls');
    assert.equal(p.severity, 'error');
    assert.equal(p.line, 9);
    assert.match(p.reason, /needs a certificate: set tls\.cert and tls\.key/);
  });

  test('fsChecksAsWarnings turns exactly the filesystem checks into warnings', () => {
    const dir = workspace();
    fs.chmodSync(path.join(dir, 'secret.key'), 0o640);
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER.replace('watch: www/', 'watch: missing')}  - name: www\n    watch: other\n`);
    const { config, problems } = parseMasterConfig(file, { fsChecksAsWarnings: true });
    assert.notEqual(config, null);
    assert.equal(problemAt(problems, 'key').severity, 'warning');
    assert.equal(problemAt(problems, 'paths[0].watch').severity, 'warning');
    assert.equal(problemAt(problems, 'paths[1].name').severity, 'error');
  });
});

describe('agent specifics', () => {
  for (const [url, reason] of [
    ['http://origin.example:7070', /master speaks websockets/],
    ['ws://', /not a URL/],
    ['ws://user:pw@origin.example', /user name or password/],
    ['ws://origin.example:7070/#x', /fragment/],
  ] as const) {
    test(`master.url ${url} is refused`, () => {
      const dir = workspace();
      const file = write(dir, 'agent.yaml', MINIMAL_AGENT.replace('ws://origin.example', url));
      const p = problemAt(parseAgentConfig(file).problems, 'master.url');
      assert.equal(p.line, 4);
      assert.match(p.reason, reason);
    });
  }

  test('ca with a ws:// url is pointless', () => {
    const dir = workspace();
    write(dir, 'ca.pem', 'x');
    const file = write(dir, 'agent.yaml', MINIMAL_AGENT.replace('  key: ', '  ca: ca.pem\n  key: '));
    const p = problemAt(parseAgentConfig(file).problems, 'master.ca');
    assert.equal(p.severity, 'warning');
    assert.equal(p.line, 5);
  });

  test('extra rsync options: allowed, not options, and denied', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', `${MINIMAL_AGENT}rsync:
  extra:
    - --compress
    - -essh
    - ssh
    - --files-from=/tmp/list
    - -avn
    - --delete-excluded
    - --bwlimit=10
    - --remove-source-files
`);
    const { problems } = parseAgentConfig(file);
    assert.deepEqual(problems.map((p) => p.key), [2, 3, 4, 5, 6, 7].map((i) => `rsync.extra[${i}]`));
    assert.equal(problemAt(problems, 'rsync.extra[2]').line, 14);
    assert.match(problemAt(problems, 'rsync.extra[2]').reason, /not an option/);
    assert.match(problemAt(problems, 'rsync.extra[4]').reason, /dry-run/);
    assert.match(problemAt(problems, 'rsync.extra[6]').reason, /set rsync\.bwlimit instead/);
  });

  test('opting a path back into devices, specials or setuid bits is accepted with a warning at that key', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', `${MINIMAL_AGENT}    devices: true\n    specials: true\n    setuid: true\n`);
    const { config, problems } = parseAgentConfig(file);
    assert.deepEqual(errors(problems), []);
    assert.deepEqual(config?.paths.map((p) => [p.devices, p.specials, p.setuid]), [[true, true, true]]);
    const devices = problemAt(problems, 'paths[0].devices');
    assert.equal(devices.severity, 'warning');
    assert.equal(devices.line, 10);
    assert.match(devices.reason, /device nodes.*CAP_MKNOD/);
    assert.match(problemAt(problems, 'paths[0].specials').reason, /FIFOs/);
    assert.match(problemAt(problems, 'paths[0].setuid').reason, /setuid-root binary.*RestrictSUIDSGID=no/);
    const off = parseAgentConfig(write(dir, 'off.yaml', `${MINIMAL_AGENT}    devices: false\n`));
    assert.deepEqual(off.problems, [], 'false is the default and says nothing');
    const bad = parseAgentConfig(write(dir, 'bad.yaml', `${MINIMAL_AGENT}    setuid: "yes"\n`));
    assert.equal(problemAt(bad.problems, 'paths[0].setuid').severity, 'error');
  });

  test('extra cannot turn devices or specials back on', () => {
    for (const arg of ['-D', '-avD', '--devices', '--specials', '--write-devices']) {
      assert.match(rsyncExtraProblem(arg) ?? '', /not allowed: .*(paths\[\]\.devices|into device nodes)/, arg);
    }
    for (const arg of ['-a', '--no-devices', '--chmod=D755,F644', '-essh -D']) assert.equal(rsyncExtraProblem(arg), null, arg);
  });

  test('negative bwlimit and timeout', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', `${MINIMAL_AGENT}rsync:\n  bwlimit: -1\n  timeout: "60"\n`);
    const { problems } = parseAgentConfig(file);
    assert.equal(problemAt(problems, 'rsync.bwlimit').line, 11);
    assert.match(problemAt(problems, 'rsync.timeout').reason, /remove the quotes/);
  });
});

describe('loading', () => {
  test('load*Config return the config, or throw a ConfigError for the first error', () => {
    const dir = workspace();
    const master = write(dir, 'master.yaml', MINIMAL_MASTER);
    assert.deepEqual(loadMasterConfig(master), masterDefaults(dir, master));
    const agent = write(dir, 'agent.yaml', MINIMAL_AGENT);
    assert.deepEqual(loadAgentConfig(agent), agentDefaults(dir, agent));

    const bad = write(dir, 'bad.yaml', `delay: "1"\n${MINIMAL_MASTER}bogus: 1\n`);
    assert.throws(() => loadMasterConfig(bad), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.file, bad);
      assert.equal(err.line, 1);
      assert.equal(err.key, 'delay');
      assert.equal(err.message, `${bad}:1: delay: ${err.reason}`);
      assert.equal(err.problems.length, 2);
      return true;
    });
  });

  test('warnings reach onWarning and do not stop loading', () => {
    const dir = workspace();
    fs.chmodSync(path.join(dir, 'secret.key'), 0o644);
    const file = write(dir, 'master.yaml', MINIMAL_MASTER);
    const seen: ConfigProblem[] = [];
    const config = loadMasterConfig(file, { fsChecksAsWarnings: true, onWarning: (p) => seen.push(p) });
    assert.equal(config.nodes.length, 1);
    assert.deepEqual(seen.map((p) => p.key), ['key']);
  });

  test('problems quoting the file escape its control characters', () => {
    const dir = workspace();
    const file = write(dir, 'agent.yaml', MINIMAL_AGENT.replace('name: mirror1', 'name: "m\\e[2J\\u009b1"'));
    const p = problemAt(parseAgentConfig(file).problems, 'name');
    assert.match(p.reason, /\u001b/, 'the reason itself keeps the raw text');
    const line = formatProblem(p);
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f]/);
    assert.match(line, /m\\u001b\[2J\\u009b1/);
  });

  test('ConfigError messages leave out unknown parts', () => {
    assert.equal(new ConfigError({ file: '/f', reason: 'r' }).message, '/f: r');
    assert.equal(new ConfigError({ file: '/f', line: 3, reason: 'r' }).message, '/f:3: r');
    assert.equal(new ConfigError({ file: '/f', key: 'a.b', reason: 'r' }).message, '/f: a.b: r');
  });

  test('detectConfigKind', () => {
    const dir = workspace();
    assert.equal(detectConfigKind(write(dir, 'm.yaml', MINIMAL_MASTER)), 'master');
    assert.equal(detectConfigKind(write(dir, 'w.yaml', 'paths:\n  - watch: /x\n')), 'master');
    assert.equal(detectConfigKind(write(dir, 'a.yaml', MINIMAL_AGENT)), 'agent');
    assert.equal(detectConfigKind(write(dir, 'n.yaml', 'name: x\n')), undefined);
    assert.throws(() => detectConfigKind(write(dir, 'e.yaml', 'a: [\n')), ConfigError);
  });

  test('checkConfigFile reports filesystem problems as warnings by default', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', MINIMAL_MASTER.replace('watch: www/', 'watch: missing'));
    const problems = checkConfigFile(file);
    assert.equal(problemAt(problems, 'paths[0].watch').severity, 'warning');
    assert.equal(problemAt(checkConfigFile(file, { fsChecksAsWarnings: false }), 'paths[0].watch').severity, 'error');
    const unknown = checkConfigFile(write(dir, 'n.yaml', 'name: x\n'));
    assert.match(unknown[0]!.reason, /cannot tell whether/);
  });
});

describe('deploy/examples', () => {
  for (const [name, parse] of [['master.yaml', parseMasterConfig], ['agent.yaml', parseAgentConfig]] as const) {
    test(`${name} parses with nothing worse than filesystem warnings`, () => {
      const file = path.join(repoRoot, 'deploy', 'examples', name);
      const loose = parse(file, { fsChecksAsWarnings: true });
      assert.notEqual(loose.config, null);
      assert.deepEqual(errors(loose.problems), [], loose.problems.map(formatProblem).join('\n'));
      // Every warning must be a filesystem check: it comes back as an error without the option.
      const strict = parse(file);
      assert.deepEqual(strict.problems.map((p) => p.key), loose.problems.map((p) => p.key));
      assert.ok(strict.problems.every((p) => p.severity === 'error'));
    });
  }
});

describe('rsync.user: the account the rsync daemon reads as', () => {
  test('a user that does not exist is an error that says how to create it', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}rsync:\n  user: no-such-inosync-user\n`);
    const p = problemAt(parseMasterConfig(file).problems, 'rsync.user');
    // Only a root master switches to the account: for anyone else a warning.
    assert.equal(p.severity, process.getuid?.() === 0 ? 'error' : 'warning');
    assert.match(p.reason, /does not exist on this machine; create it \(useradd --system/);
    assert.equal(checkConfigFile(file).find((q) => q.key === 'rsync.user')?.severity, 'warning', 'check-config without --strict: a warning');
  });

  test('a group that does not exist, and a numeric user without a group', () => {
    const dir = workspace();
    const noGroup = write(dir, 'a.yaml', `${MINIMAL_MASTER}rsync:\n  group: no-such-inosync-group\n`);
    assert.match(problemAt(parseMasterConfig(noGroup).problems, 'rsync.group').reason, /groupadd/);
    const numeric = write(dir, 'b.yaml', `${MINIMAL_MASTER}rsync:\n  user: "65534"\n`);
    assert.match(problemAt(parseMasterConfig(numeric).problems, 'rsync.user').reason, /set rsync.group too/);
    const bad = write(dir, 'c.yaml', `${MINIMAL_MASTER}rsync:\n  user: "-rf"\n`);
    assert.match(problemAt(parseMasterConfig(bad).problems, 'rsync.user').reason, /not a user or group name/);
  });

  test('root is a warning: every pull would read as root', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', `${MINIMAL_MASTER}rsync:\n  user: root\n`);
    const p = problemAt(parseMasterConfig(file).problems, 'rsync.user');
    assert.equal(p.severity, 'warning');
    assert.match(p.reason, /root/);
  });

  test('a tree the account cannot read is reported at its watch', () => {
    const dir = workspace();
    const file = write(dir, 'master.yaml', MINIMAL_MASTER);
    fs.chmodSync(path.join(dir, 'www'), 0o700);
    assert.match(problemAt(parseMasterConfig(file).problems, 'paths[0].watch').reason, /"inosync" \(uid 64999, gid 64999\) cannot list .*www \(mode 0700\)/);
    fs.chmodSync(path.join(dir, 'www'), 0o755);
    fs.writeFileSync(path.join(dir, 'www', 'private'), 'x', { mode: 0o600 });
    fs.chmodSync(path.join(dir, 'www', 'private'), 0o600);
    assert.match(problemAt(parseMasterConfig(file).problems, 'paths[0].watch').reason, /cannot read 1 of the first 1 entries .*"private"/);
    fs.chmodSync(path.join(dir, 'www', 'private'), 0o640);
    if (process.getuid?.() === 0) {
      fs.chownSync(path.join(dir, 'www', 'private'), 0, 64999);
      assert.deepEqual(parseMasterConfig(file).problems, [], 'its group may read it');
    }
    fs.chmodSync(dir, 0o700);
    assert.match(problemAt(parseMasterConfig(file).problems, 'paths[0].watch').reason, /cannot enter .* \(mode 0700\)/);
  });
});
