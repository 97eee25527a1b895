// Checks between entries of a list: unique names and keys, directories that
// do not nest. They read the raw data so they still report when some other
// entry is malformed.

import type { ConfigProblem } from './errors.js';
import { isPathWithin, resolveConfigPath } from './fs-path.js';
import type { ConfigSource } from './source.js';

function stringsOf(src: ConfigSource, list: string, field: string): { index: number; value: string }[] {
  const items = src.data[list];
  if (!Array.isArray(items)) return [];
  const out: { index: number; value: string }[] = [];
  items.forEach((item: unknown, index) => {
    if (item === null || typeof item !== 'object') return;
    const value = (item as Record<string, unknown>)[field];
    if (typeof value === 'string' && value !== '') out.push({ index, value });
  });
  return out;
}

function where(src: ConfigSource, list: string, index: number, field: string): string {
  const line = src.lineOf([list, index, field]);
  return `${list}[${index}]${line === undefined ? '' : ` (line ${line})`}`;
}

/** Each repeat of `list[].field` after its first use. */
export function duplicateProblems(src: ConfigSource, list: string, field: string, what: string): ConfigProblem[] {
  const first = new Map<string, number>();
  const out: ConfigProblem[] = [];
  for (const { index, value } of stringsOf(src, list, field)) {
    const earlier = first.get(value);
    if (earlier === undefined) {
      first.set(value, index);
    } else {
      out.push(src.problem([list, index, field],
        `${what} "${value}" is already used by ${where(src, list, earlier, field)}; each ${what} must be unique`));
    }
  }
  return out;
}

/** Each `list[].field` directory that equals or nests with an earlier entry's. */
export function nestedDirProblems(src: ConfigSource, list: string, field: string, consequence: string): ConfigProblem[] {
  const dirs: { index: number; dir: string }[] = [];
  for (const { index, value } of stringsOf(src, list, field)) {
    const r = resolveConfigPath(src.dir, value);
    if ('value' in r) dirs.push({ index, dir: r.value });
  }
  const out: ConfigProblem[] = [];
  dirs.forEach((b, j) => {
    const a = dirs.slice(0, j).find((d) => isPathWithin(b.dir, d.dir) || isPathWithin(d.dir, b.dir));
    if (!a) return;
    const relation = a.dir === b.dir ? 'is the same directory as' : isPathWithin(b.dir, a.dir) ? 'lies inside' : 'contains';
    out.push(src.problem([list, b.index, field],
      `${b.dir} ${relation} ${a.dir} of ${where(src, list, a.index, field)}; ${consequence}`));
  });
  return out;
}
