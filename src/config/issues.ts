// Zod's issues rephrased for an operator: what was found at which line, and
// what to write instead.

import * as z from 'zod';
import type { ConfigProblem } from './errors.js';
import { isMissingKey, valueAt, type KeyPath } from './keypath.js';
import type { ConfigSource } from './source.js';

export function issuesToProblems(issues: readonly z.core.$ZodIssue[], src: ConfigSource, schema: z.ZodType): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) {
    const at: KeyPath = issue.path.map((seg) => (typeof seg === 'symbol' ? String(seg) : seg));
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeys(schemaAt(schema, at));
      for (const key of issue.keys) out.push(src.problem([...at, key], unknownKeyReason(key, allowed)));
    } else {
      out.push(src.problem(at, issueReason(issue, at, src, schema)));
    }
  }
  return out;
}

function issueReason(issue: z.core.$ZodIssue, at: KeyPath, src: ConfigSource, schema: z.ZodType): string {
  const found = valueAt(src.data, at);
  switch (issue.code) {
    case 'invalid_type': {
      if (isMissingKey(src.data, at)) {
        const hint = schemaAt(schema, at)?.description;
        return `required key "${String(at[at.length - 1])}" is missing; add it${hint ? ` (${hint})` : ''}`;
      }
      return typeReason(issue.expected, found);
    }
    case 'too_small':
      if (issue.origin === 'array') return `must list at least ${String(issue.minimum)} item(s)`;
      if (issue.origin === 'string') return 'must not be empty';
      return `${String(found)} is too small; it must be ${issue.inclusive ? 'at least' : 'more than'} ${String(issue.minimum)}`;
    case 'too_big':
      if (issue.origin === 'array') return `must list at most ${String(issue.maximum)} item(s)`;
      if (issue.origin === 'string') return `is longer than ${String(issue.maximum)} characters`;
      return `${String(found)} is too large; it must be ${issue.inclusive ? 'at most' : 'less than'} ${String(issue.maximum)}`;
    case 'invalid_value':
      return `${describe(found)} is not allowed; use one of: ${issue.values.map(String).join(', ')}`;
    default:
      // custom and format issues carry reasons written by the field parsers
      return issue.message;
  }
}

const EXPECTED: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping of keys',
};

function typeReason(expected: string, found: unknown): string {
  const want = EXPECTED[expected] ?? expected;
  let reason = `expected ${want}, found ${describe(found)}`;
  if (found === null) return `has no value; write ${want} after the colon`;
  if ((expected === 'number' || expected === 'int') && typeof found === 'string' && found.trim() !== '' && Number.isFinite(Number(found))) {
    reason += '; remove the quotes';
  } else if (expected === 'int' && typeof found === 'number') {
    reason = `${found} is not a whole number; write an integer`;
  } else if (expected === 'array') {
    reason += '; write a YAML list ("- item" lines, or [a, b])';
  } else if (expected === 'object') {
    reason += '; write "key: value" lines here, indented under it';
  } else if (expected === 'string' && (typeof found === 'number' || typeof found === 'boolean')) {
    reason += '; put the value in quotes';
  }
  return reason;
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'no value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  return `${typeof v} ${String(v)}`;
}

function unknownKeyReason(key: string, allowed: string[]): string {
  const guess = closest(key, allowed);
  let reason = `unknown key "${key}"`;
  if (guess) reason += `; did you mean "${guess}"?`;
  if (allowed.length > 0) reason += `${guess ? '' : ';'} allowed here: ${allowed.join(', ')}`;
  return reason;
}

function closest(key: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = 3;
  for (const c of candidates) {
    const d = c.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, c);
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Strips the wrappers (optional, defaults, pipes) around the schema that does the checking. */
function unwrap(s: z.core.$ZodType): z.core.$ZodType {
  for (;;) {
    if (s instanceof z.ZodPipe) s = s.out instanceof z.ZodTransform ? s.in : s.out;
    else if (s instanceof z.ZodOptional || s instanceof z.ZodDefault || s instanceof z.ZodPrefault) s = s.unwrap();
    else return s;
  }
}

/** The field schema at `path`, as declared (so its description is kept). */
function schemaAt(root: z.core.$ZodType, path: KeyPath): z.ZodType | undefined {
  let cur: z.core.$ZodType | undefined = root;
  for (const seg of path) {
    const inner: z.core.$ZodType = unwrap(cur);
    if (inner instanceof z.ZodObject && typeof seg === 'string') cur = inner.shape[seg];
    else if (inner instanceof z.ZodArray && typeof seg === 'number') cur = inner.element;
    else return undefined;
    if (cur === undefined) return undefined;
  }
  return cur instanceof z.ZodType ? cur : undefined;
}

function allowedKeys(s: z.core.$ZodType | undefined): string[] {
  const inner = s && unwrap(s);
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}
