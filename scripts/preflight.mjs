// Runs before `npm test` and `npm run demo`: say clearly what is missing.
import { spawnSync } from 'node:child_process';

if (spawnSync('rsync', ['--version'], { stdio: 'ignore' }).status !== 0) {
  process.stderr.write('inosync needs rsync, which is not installed here.\nInstall it with:  apt-get install -y rsync   (as root; or: sudo apt-get install -y rsync)\n');
  process.exit(1);
}
