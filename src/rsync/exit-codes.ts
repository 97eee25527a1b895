// What an rsync exit means for the batch it was applying. The meanings are
// rsync's own: the EXIT VALUES table of `man rsync` (3.2.7), and for codes the
// table leaves out, the names rsync prints for them (log.c).

export type RsyncExitKind = 'ok' | 'partial-ok' | 'retry' | 'fatal';

export interface RsyncExit {
  /**
   * - ok: applied.
   * - partial-ok: applied except what failed or vanished; worth a warning,
   *   not a retry (the next event or reconciliation catches it up).
   * - retry: likely transient (network, daemon, timeouts, resources, killed).
   * - fatal: retrying the same batch would fail the same way.
   */
  kind: RsyncExitKind;
  meaning: string;
}

const TABLE = new Map<number, RsyncExit>([
  [0, { kind: 'ok', meaning: 'Success' }],
  [1, { kind: 'fatal', meaning: 'Syntax or usage error' }],
  [2, { kind: 'fatal', meaning: 'Protocol incompatibility' }],
  // Also what a daemon that cannot open the module's path reports: an
  // unmounted or briefly missing source.
  [3, { kind: 'retry', meaning: 'Errors selecting input/output files, dirs' }],
  [4, { kind: 'fatal', meaning: 'Requested action not supported' }],
  [5, { kind: 'retry', meaning: 'Error starting client-server protocol' }],
  [6, { kind: 'retry', meaning: 'Daemon unable to append to log-file' }],
  [10, { kind: 'retry', meaning: 'Error in socket I/O' }],
  [11, { kind: 'retry', meaning: 'Error in file I/O' }],
  [12, { kind: 'retry', meaning: 'Error in rsync protocol data stream' }],
  [13, { kind: 'fatal', meaning: 'Errors with program diagnostics' }],
  [14, { kind: 'retry', meaning: 'Error in IPC code' }],
  [15, { kind: 'fatal', meaning: 'sibling process crashed' }],
  [16, { kind: 'fatal', meaning: 'sibling process terminated abnormally' }],
  [19, { kind: 'fatal', meaning: 'received SIGUSR1' }],
  // rsync exits 20 on SIGINT, SIGTERM and SIGHUP alike: someone stopped it.
  [20, { kind: 'retry', meaning: 'Received SIGUSR1 or SIGINT' }],
  [21, { kind: 'retry', meaning: 'Some error returned by waitpid()' }],
  [22, { kind: 'retry', meaning: 'Error allocating core memory buffers' }],
  [23, { kind: 'partial-ok', meaning: 'Partial transfer due to error' }],
  // A file deleted while rsync ran: its deletion is its own, later event.
  [24, { kind: 'partial-ok', meaning: 'Partial transfer due to vanished source files' }],
  // The safety limit did its job; retrying would stop at the same place.
  [25, { kind: 'fatal', meaning: 'The --max-delete limit stopped deletions' }],
  [30, { kind: 'retry', meaning: 'Timeout in data send/receive' }],
  [35, { kind: 'retry', meaning: 'Timeout waiting for daemon connection' }],
  [124, { kind: 'fatal', meaning: 'remote shell failed' }],
  [125, { kind: 'fatal', meaning: 'remote shell killed' }],
  [126, { kind: 'fatal', meaning: 'remote command could not be run' }],
  [127, { kind: 'fatal', meaning: 'remote command not found' }],
  // Not rsync's: what a connection-level failure surfaces as (ssh's code).
  [255, { kind: 'retry', meaning: 'unexplained error (code 255)' }],
]);

/** `code` and `signal` as node's child_process reports them ('exit'/'close' event). */
export function classifyRsyncExit(code: number | null, signal: string | null): RsyncExit {
  if (code === null) {
    // Killed from outside (shutdown, OOM killer, a watchdog): the batch was
    // never judged, so run it again.
    if (signal) return { kind: 'retry', meaning: `killed by signal ${signal}` };
    return { kind: 'fatal', meaning: 'no exit code and no signal' };
  }
  const known = TABLE.get(code);
  return known ? { ...known } : { kind: 'fatal', meaning: `unexplained error (code ${code})` };
}
