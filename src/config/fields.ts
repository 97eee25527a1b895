// Zod building blocks shared by the master and agent schemas. Each string
// field is parsed by a plain function returning a value or a reason, so the
// reasons read the same wherever the field appears.

import * as z from 'zod';
import type { Checked } from './checked.js';
import { resolveBinary, resolveConfigPath } from './fs-path.js';
import { parseHostPort } from './hostport.js';
import { publicKeyProblem } from '../protocol/keys.js';
import { excludePatternProblem } from '../rsync/excludes.js';

/**
 * YAML reads an empty value (`rsync:` with every child commented out) as
 * null. For an optional key that means "not set", so its default applies.
 */
export function optional<T extends z.ZodType>(schema: T) {
  return z.preprocess((v) => (v === null ? undefined : v), schema);
}

/** A non-empty string turned into T by `parse`, whose reason becomes the problem. */
export function checkedString<T>(parse: (s: string) => Checked<T>) {
  return z.string().min(1).transform((s, ctx): T => {
    const r = parse(s);
    if ('problem' in r) {
      ctx.addIssue({ code: 'custom', message: r.problem });
      return z.NEVER;
    }
    return r.value;
  });
}

/** A non-empty string that `problem` finds nothing wrong with. */
export function vettedString(problem: (s: string) => string | null) {
  return checkedString((s): Checked<string> => {
    const p = problem(s);
    return p === null ? { value: s } : { problem: p };
  });
}

const NAME = /^[A-Za-z0-9._-]{1,64}$/;

/** Node and path names become rsync module names and file names, hence the narrow alphabet. */
export function nameProblem(s: string): string | null {
  if (!NAME.test(s)) {
    return `"${s}" is not a valid name; use 1 to 64 letters, digits, ".", "_" or "-"`;
  }
  if (s === '.' || s === '..') return `"${s}" cannot be a name because it is a path component; choose another`;
  return null;
}

export const name = () => vettedString(nameProblem);
export const publicKey = () => vettedString(publicKeyProblem);
export const hostPort = () => checkedString(parseHostPort);
export const filePath = (dir: string) => checkedString((s) => resolveConfigPath(dir, s));
export const binary = (dir: string) => checkedString((s) => resolveBinary(dir, s));

/** The master's watcher matches excludes exactly as rsync will, so it vets them too. */
function excludeProblem(pattern: string): string | null {
  const p = excludePatternProblem(pattern);
  return p === null ? null : `${JSON.stringify(pattern)} cannot be used as an rsync exclude: ${p}`;
}

export const excludeList = () => z.array(vettedString(excludeProblem));

/** setTimeout overflows above 2^31-1 ms (about 24.8 days) and then fires at once. */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

export const wholeNumber = (min: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);

/** A list whose items must be unique, reported at the repeated item. */
export function uniqueList<T extends z.ZodType>(item: T, what: string) {
  return z.array(item).superRefine((items, ctx) => {
    const seen = new Map<unknown, number>();
    items.forEach((v, i) => {
      const first = seen.get(v);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: [i], message: `${what} "${String(v)}" is already listed at position ${first + 1}; remove the repeat` });
      } else {
        seen.set(v, i);
      }
    });
  });
}
