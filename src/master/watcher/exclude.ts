// The consumer's ignore function, made safe to call from backend callbacks and
// extended to the questions backends actually ask: "is this excluded when I do
// not know its type?" and "is anything above it excluded?".

import { ancestorsOf } from '../../protocol/relpath.js';
import type { ProblemReporter } from './problems.js';

export class Exclusion {
  private failureReported = false;

  constructor(
    private readonly ignore: (rel: string, isDir: boolean) => boolean,
    private readonly problems: ProblemReporter,
  ) {}

  excluded(rel: string, isDir: boolean): boolean {
    try {
      return this.ignore(rel, isDir) === true;
    } catch (err) {
      // Watching too much is recoverable, silently dropping changes is not.
      if (!this.failureReported) {
        this.failureReported = true;
        this.problems.error(
          `the ignore function threw for "${rel}": ${(err as Error)?.message ?? String(err)};` +
            ` such paths are treated as not ignored. Fix the exclude configuration.`,
          rel,
        );
      }
      return false;
    }
  }

  /** Excluded whatever its type: used when the type is not known (yet). */
  excludedAnyType(rel: string): boolean {
    return this.excluded(rel, false) && this.excluded(rel, true);
  }

  /** For backends that watch below excluded directories and filter afterwards. */
  excludedHere(rel: string, isDir: boolean | undefined): boolean {
    for (const dir of ancestorsOf(rel)) {
      if (this.excluded(dir, true)) return true;
    }
    return isDir === undefined ? this.excludedAnyType(rel) : this.excluded(rel, isDir);
  }
}
