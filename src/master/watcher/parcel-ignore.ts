// @parcel/watcher's `ignore` option takes a fixed list of paths and globs, not
// a function, so the consumer's rules cannot be handed over as they are. A
// walk finds the directories they exclude today; passing those spares their
// whole subtrees from being crawled and watched. Directories excluded later
// are watched anyway and their events filtered out afterwards.

import { absoluteOf } from './root.js';
import type { Exclusion } from './exclude.js';
import { walk } from './walk.js';

// The wrapper treats anything is-glob recognises as a glob, so a directory
// literally named "a[1]" or "x*" would become a pattern matching other paths.
// Those are left to the after-the-fact filter.
const GLOB_LIKE = /[*?[\]{}()!+@|\\]/;

export async function excludedDirsFor(
  rootReal: string,
  startRel: string,
  ex: Exclusion,
  stop: () => boolean,
): Promise<string[]> {
  const out: string[] = [];
  await walk(rootReal, startRel, ex, {
    stop,
    excludedDir: (rel) => {
      const abs = absoluteOf(rootReal, rel);
      if (!GLOB_LIKE.test(abs)) out.push(abs);
    },
  });
  return out;
}
