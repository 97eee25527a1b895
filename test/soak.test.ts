// The soak as part of the suite: two minutes of random churn and faults
// against the multi-host harness, which must end with every mirror identical
// to the origin. A failure prints the seed to replay it with
// `npm run soak -- --minutes 2 --seed S`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { whyNoNamespaces } from '../harness/netns.js';
import { FAULT_KINDS, Soak } from '../harness/soak.js';

const fallback = whyNoNamespaces();

test(`soak: 2 minutes of churn and faults end with identical trees (${fallback ? 'loopback fallback' : 'network namespaces'})`, { timeout: 330_000 }, async (t) => {
  let out = '';
  const soak = new Soak(
    { minutes: 2, seed: randomInt(2 ** 31), agents: 3, reconcile: 0, faults: FAULT_KINDS, tls: false, keep: false, trace: false },
    {
      line: (text) => {
        out += `${text}\n`;
        t.diagnostic(text);
      },
      write: (text) => (out += text),
    },
  );
  t.after(() => soak.abort('the end of the test'));
  const passed = await soak.run();
  // The differences first (they are the finding), then the logs' tail.
  const at = out.indexOf(' differs from the origin');
  const diffs = at === -1 ? '' : out.slice(out.lastIndexOf('\n', at) + 1).split('\n').slice(0, 120).join('\n');
  assert.ok(passed, `soak failed:\n${diffs}\n...\n${out.slice(-12_000)}`);
});
