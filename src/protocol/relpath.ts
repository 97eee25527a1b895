// Relative paths as they cross the wire. A path the agent acts on must stay
// inside its target, so both sides hold them to the same narrow form.

/** Linux NAME_MAX and PATH_MAX, in bytes. */
export const NAME_MAX = 255;
export const PATH_MAX = 4096;

/** Why `p` is not an acceptable relative path, or null if it is. */
export function relPathProblem(p: unknown): string | null {
  if (typeof p !== 'string') return 'not a string';
  if (p.length === 0) return 'empty path';
  if (p.includes('\0')) return 'contains a NUL byte';
  if (p.startsWith('/')) return 'absolute path';
  if (Buffer.byteLength(p) > PATH_MAX) return `longer than ${PATH_MAX} bytes`;
  for (const seg of p.split('/')) {
    if (seg === '') return 'empty segment (leading, trailing or doubled "/")';
    if (seg === '.' || seg === '..') return `"${seg}" segment`;
    if (Buffer.byteLength(seg) > NAME_MAX) return `a name longer than ${NAME_MAX} bytes`;
  }
  return null;
}

export function isRelPath(p: unknown): p is string {
  return relPathProblem(p) === null;
}

/** Parent of a relative path, or '' for a top-level entry. */
export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

/** Every proper ancestor of `p`, outermost first: 'a/b/c' -> ['a', 'a/b']. */
export function ancestorsOf(p: string): string[] {
  const out: string[] = [];
  let i = p.indexOf('/');
  while (i >= 0) {
    out.push(p.slice(0, i));
    i = p.indexOf('/', i + 1);
  }
  return out;
}

/** True when `p` is `dir` or lies below it. */
export function isWithin(p: string, dir: string): boolean {
  return p === dir || (p.length > dir.length && p.startsWith(dir) && p.charCodeAt(dir.length) === 47);
}
