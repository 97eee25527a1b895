// Dotted key paths name a setting in messages the way an operator reads the
// file: `paths[1].watch`, `rsync.listen`.

export type KeyPath = readonly (string | number)[];

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function formatKeyPath(path: KeyPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    // A typo'd key may contain dots or spaces; quoting keeps the path unambiguous.
    else if (!PLAIN_KEY.test(seg)) out += `[${JSON.stringify(seg)}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** The value at `path` in plain parsed data, or undefined when any step is missing. */
export function valueAt(data: unknown, path: KeyPath): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, seg)) return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

/** True when the mapping at `path`'s parent exists but has no such key. */
export function isMissingKey(data: unknown, path: KeyPath): boolean {
  if (path.length === 0) return false;
  const parent = valueAt(data, path.slice(0, -1));
  const last = path[path.length - 1]!;
  return parent !== null && typeof parent === 'object' && !Array.isArray(parent)
    && !Object.prototype.hasOwnProperty.call(parent, last);
}
