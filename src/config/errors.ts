// How a config file's faults reach the operator: every fault names the file,
// the line, the dotted key and what to do, so it can be fixed without
// reading the loader.
import { escapeControls } from '../common/log.js';

export type Severity = 'error' | 'warning';

export interface ConfigProblem {
  /** absolute path of the config file */
  file: string;
  /** 1-based line of the offending key, or of its parent mapping when the key is missing */
  line?: number;
  /** dotted key path, e.g. `paths[1].watch` */
  key?: string;
  /** what is wrong and what to do about it */
  reason: string;
  severity: Severity;
}

export interface ProblemLocation {
  file: string;
  line?: number;
  key?: string;
  reason: string;
}

/**
 * `FILE:LINE: KEY: REASON`, leaving out the parts that are unknown. Reasons
 * quote the file's own text, so control characters in it are escaped, as in
 * the logs.
 */
export function formatProblem(p: ProblemLocation): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  return escapeControls(p.key === undefined || p.key === '' ? `${where}: ${p.reason}` : `${where}: ${p.key}: ${p.reason}`);
}

/** Thrown when a daemon must not start because its config is wrong. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly file: string;
  readonly line?: number;
  readonly key?: string;
  readonly reason: string;
  /**
   * Every problem found in the file, this one included, so a CLI can show
   * them all at once instead of making the operator fix them one restart at
   * a time.
   */
  readonly problems: readonly ConfigProblem[];

  constructor(p: ProblemLocation, problems?: readonly ConfigProblem[]) {
    super(formatProblem(p));
    this.file = p.file;
    if (p.line !== undefined) this.line = p.line;
    if (p.key !== undefined && p.key !== '') this.key = p.key;
    this.reason = p.reason;
    this.problems = problems ?? [{ ...p, severity: 'error' }];
  }
}
