// What inosync-master and inosync-agent share: the seed's flags (-c -d -p -v)
// plus --pidfile and --log-file, and the start/stop choreography.
import { Command } from 'commander';
import { configureLogging, makeLogger, type Logger } from '../common/log.js';
import { forkToBackground, isDaemonChild, reportReady, reportStartupError, runAsDaemon } from '../common/daemon.js';
import { SOFTWARE_VERSION } from '../protocol/version.js';

export interface DaemonCliOptions {
  config: string;
  daemonize: boolean;
  pidfile?: string;
  logFile?: string;
  logFormat: 'text' | 'json';
  dryRun: boolean;
  verbose: boolean;
}

export interface Runnable {
  start(): Promise<void> | void;
  stop(): Promise<void>;
  /** SIGHUP: the master reloads its nodes, the agent reconnects and retries now. */
  hup?(): void;
  /** SIGUSR2: the master reconciles every node. */
  usr2?(): void;
}

export async function runDaemonCli(
  name: string,
  description: string,
  defaultConfig: string,
  build: (opts: DaemonCliOptions, log: Logger) => Runnable,
): Promise<void> {
  const program = new Command(name)
    .description(description)
    .version(SOFTWARE_VERSION, '--version', "show program's version number and exit")
    .helpOption('-h, --help', 'show this help message and exit')
    .option('-c, --config <FILE>', 'load configuration from FILE', defaultConfig)
    .option('-d, --daemonize', 'daemonize (fork to background)', false)
    .option('--pidfile <FILE>', 'write the daemon pid to FILE (refuses to start if another instance holds it)')
    .option('--log-file <FILE>', 'append logs to FILE instead of stderr')
    .option('--log-format <FORMAT>', 'text or json (JSON lines)', process.env.INOSYNC_LOG_FORMAT === 'json' ? 'json' : 'text')
    .option('-p, --dry-run', 'do not actually call rsync (log what would run)', false)
    .option('-v, --verbose', 'print debugging information', false);
  program.parse();
  const opts = program.opts<DaemonCliOptions>();
  if (opts.logFormat !== 'text' && opts.logFormat !== 'json') {
    process.stderr.write(`${name}: --log-format must be text or json\n`);
    process.exit(2);
  }
  if (opts.daemonize && !isDaemonChild()) process.exit(await forkToBackground(opts));
  configureLogging({ level: opts.verbose ? 'debug' : 'info', json: opts.logFormat === 'json', ...(opts.logFile ? { file: opts.logFile } : {}) });
  const log = makeLogger({ component: name.replace(/^inosync-/, '') });
  let daemon: Runnable;
  try {
    daemon = build(opts, log);
    runAsDaemon(opts, log, () => daemon.stop());
    // Without a handler SIGHUP would kill the process (Node's default).
    process.on('SIGHUP', () => {
      log.info('SIGHUP');
      daemon.hup?.();
    });
    // Node's default for SIGUSR2 is to die; SIGUSR1 is left to its debugger.
    process.on('SIGUSR2', () => {
      log.info('SIGUSR2');
      daemon.usr2?.();
    });
    await daemon.start();
  } catch (err) {
    const message = `${name}: ${(err as Error).message}`;
    reportStartupError(message);
    process.stderr.write(message + '\n');
    process.exit(1);
  }
  reportReady(log);
}
