// `npm run demo`: a master and two agents on this machine, in temporary
// directories, showing a change propagate and the nodes' status.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { join } from 'node:path';
import { Cluster } from '../harness/cluster.js';
import { waitFor } from '../harness/wait.js';

const INOSYNC = new URL('../src/cli/inosync.js', import.meta.url).pathname;

function say(text: string): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
}

if (spawnSync('rsync', ['--version']).status !== 0) {
  process.stderr.write('rsync is not installed: run `apt-get install -y rsync` (Debian/Ubuntu) and try again.\n');
  process.exit(1);
}

const c = await new Cluster({ agents: 2, paths: [{ name: 'www', exclude: ['/localhost/', '*.swp'] }] }).setup();
let code = 0;
try {
  say(`origin ${c.origin()}  ->  mirrors ${c.mirror(0)}, ${c.mirror(1)}`);
  await fs.writeFile(join(c.origin(), 'index.html'), '<h1>hello from the origin</h1>\n');
  say('starting inosync-master and two inosync-agent processes');
  await c.start();
  process.stdout.write(`mirror0/index.html: ${readFileSync(join(c.mirror(0), 'index.html'), 'utf8')}`);

  say('writing a new file on the origin');
  const started = performance.now();
  await fs.mkdir(join(c.origin(), 'blog'));
  await fs.writeFile(join(c.origin(), 'blog', 'post 1.html'), '<p>a new post</p>\n');
  await c.waitConverged();
  process.stdout.write(`both mirrors identical to the origin after ${Math.round(performance.now() - started)} ms\n`);

  say('an excluded path (/localhost/) is never sent');
  await fs.mkdir(join(c.origin(), 'localhost'));
  await fs.writeFile(join(c.origin(), 'localhost', 'private.txt'), 'stays on the origin\n');
  await fs.rm(join(c.origin(), 'index.html'));
  await waitFor(async () => !(await fs.stat(join(c.mirror(1), 'index.html')).catch(() => null)), 10_000, 'deletion to propagate');
  process.stdout.write(`deleted index.html on both mirrors; mirror has localhost/: ${await fs.stat(join(c.mirror(0), 'localhost')).then(() => 'yes (bug!)', () => 'no')}\n`);

  await c.waitIdle();
  say(`inosync status --url ${c.statusUrl}`);
  process.stdout.write(execFileSync(process.execPath, [INOSYNC, 'status', '--url', c.statusUrl], { encoding: 'utf8' }));

  say('stopping agent 1 and changing a file: the status shows it');
  await c.stopAgent(1);
  await fs.writeFile(join(c.origin(), 'blog', 'post 2.html'), '<p>another post</p>\n');
  await c.waitConverged(0);
  const r = spawnSync(process.execPath, [INOSYNC, 'status', '--url', c.statusUrl], { encoding: 'utf8' });
  process.stdout.write(r.stdout);
  process.stdout.write(`(inosync status exited ${r.status}: 1 means some node is not current)\n`);

  say('agent 1 comes back and catches up');
  c.startAgent(1);
  await c.waitConverged();
  await c.waitIdle();
  process.stdout.write(execFileSync(process.execPath, [INOSYNC, 'status', '--url', c.statusUrl], { encoding: 'utf8' }));
  say('demo complete: every mirror is identical to the origin');
} catch (err) {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  code = 1;
} finally {
  await c.cleanup();
}
process.exit(code);
