#!/usr/bin/env node
import { loadMasterConfig } from '../config/load.js';
import { Master } from '../master/master.js';
import { runDaemonCli } from './daemon-cli.js';

await runDaemonCli('inosync-master', 'Watch directories and tell inosync agents what to pull.', '/etc/inosync/master.yaml', (opts, log) => {
  const config = loadMasterConfig(opts.config);
  return new Master(config, { log, dryRun: opts.dryRun });
});
