#!/usr/bin/env node
// Operator commands: keys, config checks, and the per-node status picture.
import { Command } from 'commander';
import { generateKeyFile, loadSecretKey } from '../common/keyfile.js';
import { checkConfigFile, loadMasterConfig } from '../config/load.js';
import { formatPublicKey } from '../protocol/keys.js';
import { SOFTWARE_VERSION } from '../protocol/version.js';
import { runStatusCommand, statusUrlFromListen } from './status-cmd.js';

const program = new Command('inosync')
  .description('inosync: near real-time directory mirroring with rsync')
  .version(SOFTWARE_VERSION, '--version')
  .helpOption('-h, --help');

function fail(message: string, code = 1): never {
  process.stderr.write(`inosync: ${message}\n`);
  process.exit(code);
}

program
  .command('keygen')
  .description('write a new ed25519 secret key to FILE (mode 0600) and print its public key')
  .argument('<FILE>')
  .action((file: string) => {
    try {
      process.stdout.write(generateKeyFile(file) + '\n');
    } catch (err) {
      fail((err as Error).message);
    }
  });

program
  .command('pubkey')
  .description('print the public key of an existing secret key file')
  .argument('<FILE>')
  .action((file: string) => {
    try {
      process.stdout.write(formatPublicKey(loadSecretKey(file).publicKey) + '\n');
    } catch (err) {
      fail((err as Error).message);
    }
  });

program
  .command('check-config')
  .description('validate master or agent config files; exit 0 if all are valid')
  .argument('<FILE...>')
  .option('--strict', 'treat problems with files on this machine (keys, directories) as errors too', false)
  .action((files: string[], o: { strict: boolean }) => {
    let errors = 0;
    for (const file of files) {
      const problems = checkConfigFile(file);
      let fileErrors = 0;
      for (const p of problems) {
        const severity = o.strict ? 'error' : p.severity;
        if (severity === 'error') fileErrors++;
        const where = [p.file, p.line].filter((x) => x !== undefined).join(':');
        process.stderr.write(`${where}: ${severity}: ${p.key ? p.key + ': ' : ''}${p.reason}\n`);
      }
      if (fileErrors === 0) process.stdout.write(`${file}: ok\n`);
      errors += fileErrors;
    }
    process.exit(errors === 0 ? 0 : 1);
  });

program
  .command('status')
  .description('show every node: state, lag, pending changes, last sync and error (exit 0 ok, 1 degraded, 2 unreachable)')
  .option('-c, --config <FILE>', 'master config (to find its status listener)', '/etc/inosync/master.yaml')
  .option('--url <URL>', 'status URL of the master, e.g. http://127.0.0.1:7071')
  .option('--json', 'print the status as JSON', false)
  .option('--watch [SECONDS]', 'refresh every SECONDS (default 2) until interrupted')
  .action(async (o: { config: string; url?: string; json: boolean; watch?: string | boolean }) => {
    let url = o.url;
    if (!url) {
      try {
        const cfg = loadMasterConfig(o.config, { fsChecksAsWarnings: true });
        url = statusUrlFromListen(cfg.status.listen.host, cfg.status.listen.port);
      } catch (err) {
        fail(`${(err as Error).message} (or pass --url)`, 2);
      }
    }
    const watch = o.watch === undefined || o.watch === false ? null : o.watch === true ? 2 : Number(o.watch);
    if (watch !== null && !(watch > 0)) fail('--watch takes a positive number of seconds', 2);
    process.exit(await runStatusCommand({ url, json: o.json, watch, color: process.stdout.isTTY === true && !process.env.NO_COLOR }));
  });

await program.parseAsync();
