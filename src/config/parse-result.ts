// What parseMasterConfig / parseAgentConfig hand back.

import type { ConfigProblem } from './errors.js';

export interface ParseOptions {
  /**
   * Report checks against this machine's filesystem (files exist, key
   * permissions, rsync in PATH) as warnings: for checking a config written
   * for another machine. By default they are errors.
   */
  fsChecksAsWarnings?: boolean;
}

export interface ParseResult<T> {
  /**
   * The validated config, or null when its structure is invalid. Present
   * despite error-severity problems about names, overlaps or the filesystem,
   * so a checker can still show it; load*Config refuses it then.
   */
  config: T | null;
  /** ordered by line; file-level problems first */
  problems: ConfigProblem[];
}

export function finish<T>(config: T | null, problems: ConfigProblem[]): ParseResult<T> {
  const sorted = problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => (a.p.line ?? 0) - (b.p.line ?? 0) || a.i - b.i)
    .map(({ p }) => p);
  return { config, problems: sorted };
}

/** Drops keys whose value is undefined, so configs compare equal to plain literals. */
export function stripUndefined<T>(v: T): T {
  if (Array.isArray(v)) return v.map(stripUndefined) as T;
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = stripUndefined(x);
  return out as T;
}
