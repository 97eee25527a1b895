// Probing the rsync daemon's address: the messages an operator gets, the
// address a probe connects to, and both probes against a real listener.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { accepts, portProblem, portProblemMessage, probeHost } from '../../src/master/rsyncd/port-probe.js';

describe('portProblemMessage', () => {
  const cases: [string | undefined, RegExp][] = [
    ['EADDRINUSE', /^10\.0\.0\.1:873 is already in use .*rsync\.listen\.port$/],
    ['EADDRNOTAVAIL', /^10\.0\.0\.1 is not an address of this host: fix rsync\.listen\.host$/],
    ['EACCES', /^not allowed to listen on 10\.0\.0\.1:873: ports below 1024 need root$/],
    ['ENOTFOUND', /^cannot resolve rsync\.listen\.host "10\.0\.0\.1"$/],
    ['EAI_AGAIN', /^cannot resolve rsync\.listen\.host "10\.0\.0\.1"$/],
    ['EWHATEVER', /^cannot listen on 10\.0\.0\.1:873: boom$/],
    [undefined, /^cannot listen on 10\.0\.0\.1:873: boom$/],
  ];
  for (const [code, want] of cases) {
    test(String(code), () => assert.match(portProblemMessage('10.0.0.1', 873, { code, message: 'boom' }), want));
  }
});

describe('probeHost', () => {
  const cases: [string, string][] = [
    ['0.0.0.0', '127.0.0.1'],
    ['', '127.0.0.1'],
    ['::', '::1'],
    ['[::]', '::1'],
    ['[::1]', '::1'],
    ['192.0.2.7', '192.0.2.7'],
    ['mirror.example', 'mirror.example'],
  ];
  for (const [host, want] of cases) test(`${JSON.stringify(host)} -> ${want}`, () => assert.equal(probeHost(host), want));
});

describe('against a real listener', () => {
  async function listening(): Promise<{ srv: Server; port: number }> {
    const srv = createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return { srv, port: (srv.address() as { port: number }).port };
  }

  test('a taken port is reported as in use, and accepts connections', async () => {
    const { srv, port } = await listening();
    try {
      assert.match((await portProblem('127.0.0.1', port)) ?? '', /is already in use/);
      assert.equal(await accepts('127.0.0.1', port), true);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  test('a freed port is free again, and refuses connections', async () => {
    const { srv, port } = await listening();
    await new Promise((r) => srv.close(r));
    assert.equal(await portProblem('127.0.0.1', port), null);
    assert.equal(await accepts('127.0.0.1', port), false);
  });
});
