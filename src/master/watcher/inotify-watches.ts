// Counts the inotify watches this process holds. Neither backend exposes its
// count, but the kernel lists every watch of an inotify descriptor as an
// "inotify wd:" line in /proc/self/fdinfo/<fd>. The count covers every
// inotify user in the process (libuv's fs.watch and @parcel/watcher alike).

import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

const FD_DIR = '/proc/self/fd';
const FDINFO_DIR = '/proc/self/fdinfo';

/** undefined when /proc is not available (not Linux, or hidden). */
export function countInotifyWatches(): number | undefined {
  let fds: string[];
  try {
    fds = readdirSync(FD_DIR);
  } catch {
    return undefined;
  }
  let total = 0;
  for (const fd of fds) {
    try {
      if (readlinkSync(`${FD_DIR}/${fd}`) !== 'anon_inode:inotify') continue;
      total += countLines(readFileSync(`${FDINFO_DIR}/${fd}`, 'latin1'), 'inotify wd:');
    } catch {
      // The descriptor closed between listing and reading: it holds nothing now.
    }
  }
  return total;
}

function countLines(text: string, prefix: string): number {
  let n = 0;
  let at = text.startsWith(prefix) ? 0 : text.indexOf('\n' + prefix);
  while (at !== -1) {
    n++;
    at = text.indexOf('\n' + prefix, at + 1);
  }
  return n;
}
