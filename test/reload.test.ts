// A master told to reload (SIGHUP): mirrors are added, removed and re-keyed
// while the others keep their connection; a broken config changes nothing;
// keys that need a restart are named. Real master, agents and rsync.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MasterConfig } from '../src/config/types.js';
import { nodesChange, restartOnlyChanges } from '../src/master/reload.js';
import { Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';
import { FakeAgent } from '../harness/fake-agent.js';
import { masterPub, readText, rsync, signerOf } from '../harness/security.js';

const node = (name: string, key = `${name}-key`) => ({ name, key });

test('nodesChange: added, removed and re-keyed, by name', () => {
  assert.deepEqual(nodesChange([node('a'), node('b'), node('c')], [node('a'), node('b', 'new'), node('d')]), {
    added: ['d'],
    removed: ['c'],
    rekeyed: ['b'],
  });
  assert.deepEqual(nodesChange([node('a')], [node('a')]), { added: [], removed: [], rekeyed: [] });
  assert.deepEqual(nodesChange([], [node('a')]).added, ['a']);
});

test('restartOnlyChanges names every other key that changed, nested or not', () => {
  const base = {
    file: '/etc/inosync/master.yaml',
    listen: { host: '0.0.0.0', port: 7070 },
    rsync: { listen: { host: '0.0.0.0', port: 8730 }, binary: 'rsync', tls: false },
    delay: 0.05,
    nodes: [node('a')],
    paths: [{ name: 'www', watch: '/var/www', exclude: [] }],
  } as unknown as MasterConfig;
  assert.deepEqual(restartOnlyChanges(base, { ...base, nodes: [node('b')], file: '/other' }), [], 'nodes and file are not restart-only');
  assert.deepEqual(restartOnlyChanges(base, structuredClone(base)), []);
  const changed = { ...structuredClone(base), delay: 1, rsync: { ...base.rsync, binary: '/usr/bin/rsync' }, tls: { cert: 'c', key: 'k' } } as MasterConfig;
  assert.deepEqual(restartOnlyChanges(base, changed), ['delay', 'rsync', 'tls']);
  const withTls = { ...structuredClone(base), tls: { cert: '/a.crt', key: '/a.key' } } as MasterConfig;
  const renewed = { ...structuredClone(base), tls: { cert: '/b.crt', key: '/b.key' } } as MasterConfig;
  assert.deepEqual(restartOnlyChanges(withTls, renewed), [], 'a certificate kept on is read again, wherever it is');
  assert.deepEqual(restartOnlyChanges(withTls, base), ['tls'], 'turning TLS off takes a restart');
  const paths = structuredClone(base);
  paths.paths[0]!.exclude.push('*.tmp');
  assert.deepEqual(restartOnlyChanges(base, paths), ['paths']);
});

describe('reloading the master config (SIGHUP)', { timeout: 180_000 }, () => {
  let c: Cluster;
  let all: { name: string; key: string }[] = [];

  const writeNodes = (nodes: { name: string; key: string }[], over: Record<string, unknown> = {}): void => {
    const cfg = JSON.parse(readFileSync(c.masterConfig, 'utf8')) as Record<string, unknown>;
    writeFileSync(c.masterConfig, JSON.stringify({ ...cfg, nodes, ...over }, null, 2));
  };
  const nodeNames = async (): Promise<string[]> => (await c.fetchStatus())!.nodes.map((n) => n.name);

  before(async () => {
    c = new Cluster({ agents: 2 });
    await c.setup();
    all = (JSON.parse(readFileSync(c.masterConfig, 'utf8')) as { nodes: { name: string; key: string }[] }).nodes;
    // mirror1 is not listed yet.
    writeNodes(all.filter((n) => n.name !== c.agentName(1)));
    await c.startMaster();
    c.startAgent(0);
    c.startAgent(1);
    await c.waitIdle(30_000, [0]);
  });

  after(async () => {
    await c?.cleanup();
  });

  test('a node added to the config connects and converges; the others keep their connection', async () => {
    // Refused six times, mirror1 now waits at least 6 s (8 s +-25%) before it tries again.
    const refusals = (): number => readText(c.agents[1]!.log).split('the master refused this agent').length - 1;
    await waitFor(() => refusals() >= 6, 30_000, 'mirror1 to be refused six times');
    writeFileSync(join(c.origin(), 'one.txt'), 'one');
    await c.waitConverged(0);
    const since = (await c.fetchStatus())!.nodes.find((n) => n.name === c.agentName(0))!.connectedSince;
    writeNodes(all);
    await c.signalMaster('SIGHUP', /reload: nodes updated .*added=mirror1/);
    assert.deepEqual(await nodeNames(), [c.agentName(0), c.agentName(1)]);
    // Told to, the agent ends its backoff and comes at once.
    const told = Date.now();
    c.agents[1]!.child.kill('SIGHUP');
    await waitFor(() => /connected to master/.test(readText(c.agents[1]!.log)), 10_000, 'mirror1 to connect');
    assert.ok(Date.now() - told < 3_000, `mirror1 took ${Date.now() - told} ms to connect after SIGHUP: it waited out its backoff`);
    assert.equal(refusals(), 6, 'no attempt of its own came in between');
    await c.waitIdle(30_000);
    await c.waitConverged();
    const s = (await c.fetchStatus())!;
    assert.equal(s.nodes.find((n) => n.name === c.agentName(0))!.connectedSince, since, 'mirror0 was not reconnected');
  });

  test('a broken config is refused and the running one kept; other changes wait for a restart', async () => {
    const good = readFileSync(c.masterConfig, 'utf8');
    writeFileSync(c.masterConfig, good.replace('"nodes"', '"nodez"'));
    await c.signalMaster('SIGHUP', /reload refused: the config has errors/);
    assert.deepEqual(await nodeNames(), [c.agentName(0), c.agentName(1)]);
    writeFileSync(c.masterConfig, good);
    writeNodes(all, { delay: 0.5 });
    await c.signalMaster('SIGHUP', /these keys changed and take effect only at the next restart .*keys=delay/);
    writeFileSync(join(c.origin(), 'two.txt'), 'two');
    await c.waitConverged();
  });

  test('SIGUSR2: a full reconciliation repairs a mirror changed by hand', async () => {
    await c.waitIdle(30_000);
    writeFileSync(join(c.mirror(1), 'one.txt'), 'changed on the mirror, unknown to the origin');
    await c.signalMaster('SIGUSR2', /full reconciliation .*reason=SIGUSR2/);
    await c.waitConverged(undefined, 30_000);
  });

  test('a node removed from the config is cut off at once, and its rsync credentials stop working', async () => {
    // The real agent first: taken over, it would reconnect within ~250 ms and
    // take the connection back from the stand-in before the reload lands.
    await c.stopAgent(0);
    // Its credentials, as the real agent holds them.
    const fake = await FakeAgent.connect({ url: `ws://127.0.0.1:${c.masterPort}`, name: c.agentName(0), signer: signerOf(c, 0), masterKey: masterPub(c) });
    await fake.handshake();
    const creds = fake.creds!;
    // The daemon serves the module root only: one file is pulled with a filter, as agents do.
    const url = `rsync://${creds.user}@127.0.0.1:${c.rsyncPort}/www/`;
    const before = await rsync(['-r', '--include=/one.txt', '--exclude=*', url, `${join(c.dir, 'pulled-before')}/`], creds.password);
    assert.equal(before.code, 0, before.stderr);
    writeNodes(all.filter((n) => n.name !== c.agentName(0)));
    await c.signalMaster('SIGHUP', /reload: nodes updated .*removed=mirror0/);
    const closed = await fake.waitClosed();
    assert.deepEqual(closed, { code: 4401, reason: 'removed from the master config' });
    assert.deepEqual(await nodeNames(), [c.agentName(1)]);
    const afterwards = await rsync(['-r', '--include=/one.txt', '--exclude=*', url, `${join(c.dir, 'pulled-after')}/`], creds.password);
    assert.notEqual(afterwards.code, 0, 'the removed node can still pull');
    writeFileSync(join(c.origin(), 'three.txt'), 'three');
    await c.waitConverged(1);
  });

  test('a node whose key changes is cut off, and its old key no longer gets in', async () => {
    const log = () => readText(c.agents[1]!.log);
    const from = log().length;
    // mirror1 now "has" mirror0's key: the real mirror1 no longer proves it.
    writeNodes([{ name: c.agentName(1), key: all[0]!.key }]);
    await c.signalMaster('SIGHUP', /reload: nodes updated .*rekeyed=mirror1/);
    await waitFor(() => /the master refused this agent.*its key changed/.test(log().slice(from)), 15_000, 'mirror1 to be cut off');
    // It comes back with its old key, and is refused.
    await waitFor(async () => /key does not match/.test((await c.fetchStatus())!.nodes.find((x) => x.name === c.agentName(1))!.lastRefusal?.reason ?? ''), 15_000, 'the refusal of the old key');
    assert.equal((await c.fetchStatus())!.nodes.find((x) => x.name === c.agentName(1))!.connected, false);
  });
});
