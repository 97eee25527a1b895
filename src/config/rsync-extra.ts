// Extra rsync arguments on the agent (the seed's `extra`). The agent builds
// the rest of the command line itself: it hands rsync each batch's file list,
// the master's excludes and its own limits, and records a batch as applied
// when rsync exits 0. Options that would replace those inputs, switch rsync
// into another role, touch the master's files, or make rsync succeed without
// transferring would let a mirror silently diverge, so they are refused.

const LIST_INPUT = 'the agent passes each batch\'s file list to rsync itself; a second list would sync the wrong files';
const FILTER_INPUT = 'excludes come from the master (paths[].exclude) so every mirror agrees; add them there';
const ROLE = 'would switch rsync out of its role as a client pulling from the master\'s daemon';
const NO_OP = 'rsync would exit successfully without changing anything, and the agent would record the batch as applied';
// Measured with rsync 3.2.7: with -K a symlink on the mirror where the origin
// has a directory (`evil -> /etc`) is followed, and a synced `evil/passwd`
// overwrites /etc/passwd. Without it rsync replaces the symlink.
const DIRLINKS = 'would make rsync follow symlinks on this mirror where the origin has a directory, writing outside the target; mount or bind-mount the storage at the target path instead';

const OPT_IN = 'mirrors refuse device nodes and special files from the origin unless the path opts in; set paths[].devices or paths[].specials instead';

const DENIED_LONG: Readonly<Record<string, string>> = {
  '--files-from': LIST_INPUT,
  '--from0': LIST_INPUT,
  '--include-from': FILTER_INPUT,
  '--exclude-from': FILTER_INPUT,
  '--delete-excluded': 'would delete files on this mirror that the master\'s excludes say to leave alone',
  '--server': ROLE,
  '--sender': ROLE,
  '--daemon': ROLE,
  '--config': ROLE,
  '--remote-option': 'would pass options to the master\'s rsync daemon, which the master configures itself',
  '--remove-source-files': 'would ask the master\'s daemon to delete the originals',
  '--dry-run': NO_OP,
  '--list-only': NO_OP,
  '--only-write-batch': NO_OP,
  '--read-batch': 'would apply a batch file instead of the master\'s data',
  '--version': NO_OP,
  '--help': NO_OP,
  '--bwlimit': 'set rsync.bwlimit instead',
  '--timeout': 'set rsync.timeout instead',
  '--max-delete': 'set paths[].maxDelete instead',
  '--keep-dirlinks': DIRLINKS,
  '--devices': OPT_IN,
  '--specials': OPT_IN,
  // 3.2+: the origin's data written into device nodes on this mirror.
  '--write-devices': 'would write file contents into device nodes on this mirror',
};

const DENIED_SHORT: Readonly<Record<string, string>> = {
  n: `-n is --dry-run: ${NO_OP}`,
  '0': `-0 is --from0: ${LIST_INPUT}`,
  M: `-M is --remote-option: ${DENIED_LONG['--remote-option']!}`,
  K: `-K is --keep-dirlinks: ${DIRLINKS}`,
  D: `-D is --devices --specials: ${OPT_IN}`,
};

/** Short options whose argument may follow in the same word (-essh), ending the cluster. */
const SHORT_WITH_ARG = new Set(['B', 'e', 'T', 'f', 'M', '@']);

/** Why `arg` may not be passed to rsync by the agent, or null if it may. */
export function rsyncExtraProblem(arg: string): string | null {
  if (arg.includes('\n') || arg.includes('\0')) return 'contains a newline or NUL character; remove it';
  if (!arg.startsWith('-') || arg === '-' || arg === '--') {
    return `"${arg}" is not an option; each item must be one option starting with "-", `
      + 'with its value in the same item (e.g. --rsh=ssh, not "--rsh", "ssh")';
  }
  if (arg.startsWith('--')) {
    const name = arg.split('=', 1)[0]!;
    const why = DENIED_LONG[name];
    return why === undefined ? null : `${name} is not allowed: ${why}`;
  }
  for (const c of arg.slice(1)) {
    const why = DENIED_SHORT[c];
    if (why !== undefined) return `${arg} is not allowed: ${why}`;
    if (SHORT_WITH_ARG.has(c)) break;
  }
  return null;
}
