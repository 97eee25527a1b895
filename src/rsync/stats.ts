// The totals of an rsync run, from the block --stats prints at the end.
// buildRsyncArgs asks for plain digits (--no-human-readable), but an `extra`
// from the config may bring -h back, so separators and unit suffixes are
// understood too.

export interface RsyncStats {
  /** regular files rsync (re)wrote */
  files: number;
  /** their total size in bytes (what changed on the mirror, not what crossed the wire) */
  bytes: number;
  /** entries deleted, directories included */
  deleted: number;
}

export function parseRsyncStats(stdout: string): RsyncStats {
  return {
    files: field(stdout, 'Number of regular files transferred'),
    bytes: field(stdout, 'Total transferred file size'),
    deleted: field(stdout, 'Number of deleted files'),
  };
}

// Level 2 (-h) counts in units of 1000, level 3 (-hh) in 1024; the output does
// not say which, so 1000 it is: an approximation either way.
const UNITS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };

function field(text: string, label: string): number {
  const m = new RegExp(`^${label}: ([0-9][0-9.,]*)([KMGTP]?)\\b`, 'm').exec(text);
  if (!m) return 0; // no --stats, or an rsync too old to print this line
  const digits = m[1]!;
  const unit = m[2]!;
  // Without a unit the number is an integer whose thousands separator is ','
  // or '.' depending on the locale; with one it is a decimal whose point is
  // '.' or ','.
  const n = unit === '' ? Number(digits.replace(/[.,]/g, '')) : Number(digits.replace(',', '.')) * UNITS[unit]!;
  return Number.isFinite(n) ? Math.round(n) : 0;
}
