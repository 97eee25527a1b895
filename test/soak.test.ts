// The soak script as part of the suite: two minutes of random churn and
// faults against the multi-host harness, which must end with every mirror
// identical to the origin. A failure prints the seed to replay it with
// `npm run soak -- --minutes 2 --seed S`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { whyNoNamespaces } from './helpers/netns.js';

const SCRIPT = new URL('../scripts/soak.js', import.meta.url).pathname;
const fallback = whyNoNamespaces();

test(`soak: 2 minutes of churn and faults end with identical trees (${fallback ? 'loopback fallback' : 'network namespaces'})`, { timeout: 330_000 }, async (t) => {
  const child = spawn(process.execPath, [SCRIPT, '--minutes', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  for (const line of out.split('\n')) if (line.startsWith('[soak')) t.diagnostic(line);
  // The differences first (they are the finding), then the logs' tail.
  const at = out.indexOf(' differs from the origin');
  const diffs = at === -1 ? '' : out.slice(out.lastIndexOf('\n', at) + 1).split('\n').slice(0, 120).join('\n');
  assert.equal(code, 0, `soak failed:\n${diffs}\n...\n${out.slice(-12_000)}`);
});
