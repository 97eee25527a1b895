// Runs before `npm test` and `npm run demo`: say clearly what is missing, and
// which rsync this run uses (its behaviour differs between versions).
import { spawnSync } from 'node:child_process';

const r = spawnSync('rsync', ['--version'], { encoding: 'utf8' });
if (r.status !== 0) {
  process.stderr.write('inosync needs rsync, which is not installed here.\nInstall it with:  apt-get install -y rsync   (as root; or: sudo apt-get install -y rsync)\n');
  process.exit(1);
}
process.stdout.write(`${r.stdout.split('\n')[0]?.replace(/\s+/g, ' ').trim()} (${spawnSync('sh', ['-c', 'command -v rsync'], { encoding: 'utf8' }).stdout.trim()})\n`);
