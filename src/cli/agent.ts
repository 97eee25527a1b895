#!/usr/bin/env node
import { loadAgentConfig } from '../config/load.js';
import { Agent } from '../agent/agent.js';
import { runDaemonCli } from './daemon-cli.js';

await runDaemonCli('inosync-agent', 'Mirror an inosync master: verify its batches and pull the changes with rsync.', '/etc/inosync/agent.yaml', (opts, log) => {
  const config = loadAgentConfig(opts.config);
  return new Agent(config, { log, dryRun: opts.dryRun });
});
