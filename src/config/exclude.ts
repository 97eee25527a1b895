// Exclude patterns end up one per line in the rsync daemon's config and in
// filter lists, so a newline or NUL would split one pattern into two.
// TODO: switch to excludePatternProblem() from src/protocol/excludes.ts once
// it exists, so master and agent share one rule.

/** Why `pattern` cannot be used as an rsync exclude, or null. */
export function excludeProblem(pattern: string): string | null {
  if (pattern === '') return 'is empty; remove it';
  if (pattern.includes('\n') || pattern.includes('\r')) return 'contains a line break; write one pattern per list item';
  if (pattern.includes('\0')) return 'contains a NUL character; remove it';
  return null;
}
