// A config file read into plain data, with the YAML node tree kept beside it
// so any key path can be traced back to the line the operator wrote.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { isAlias, isMap, isNode, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node as YamlNode, YAMLError } from 'yaml';
import type { ConfigProblem, Severity } from './errors.js';
import { formatKeyPath, type KeyPath } from './keypath.js';

/** A config is a few dozen lines; anything this large is the wrong file. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

export class ConfigSource {
  /** directory that relative paths in the file are resolved against */
  readonly dir: string;

  constructor(
    readonly file: string,
    readonly data: Record<string, unknown>,
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
  ) {
    this.dir = path.dirname(file);
  }

  /**
   * Line of the key at `path`, or of the deepest part of it that exists: a
   * missing key is reported at its parent mapping.
   */
  lineOf(keyPath: KeyPath): number | undefined {
    let node: unknown = this.doc.contents;
    let line = this.startLine(node);
    for (const seg of keyPath) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => keyText(p.key) === String(seg));
        if (!pair) break;
        line = this.startLine(pair.key) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item: unknown = node.items[seg];
        if (item === undefined) break;
        line = this.startLine(item) ?? line;
        node = item;
      } else {
        break;
      }
    }
    return line;
  }

  problem(keyPath: KeyPath, reason: string, severity: Severity = 'error'): ConfigProblem {
    const p: ConfigProblem = { file: this.file, reason, severity };
    const line = this.lineOf(keyPath);
    if (line !== undefined) p.line = line;
    if (keyPath.length > 0) p.key = formatKeyPath(keyPath);
    return p;
  }

  private startLine(node: unknown): number | undefined {
    if (!isNode(node) || !node.range) return undefined;
    return this.lines.linePos(node.range[0]).line;
  }
}

export interface ReadResult {
  /** null when the file could not be read or is not a YAML mapping */
  source: ConfigSource | null;
  problems: ConfigProblem[];
}

export function readConfigSource(file: string): ReadResult {
  const abs = path.resolve(file);
  const fail = (reason: string, line?: number, key?: string): ReadResult => {
    const p: ConfigProblem = { file: abs, reason, severity: 'error' };
    if (line !== undefined) p.line = line;
    if (key !== undefined) p.key = key;
    return { source: null, problems: [p] };
  };

  let text: string;
  try {
    const st = fs.statSync(abs);
    if (!st.isFile()) return fail('is not a regular file; pass the path of the YAML config file');
    if (st.size > MAX_CONFIG_BYTES) {
      return fail(`is ${st.size} bytes, more than the ${MAX_CONFIG_BYTES} allowed for a config file; check that this is the right file`);
    }
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    return fail(readFailure(err));
  }

  const lines = new LineCounter();
  // prettyErrors would fold a source excerpt into the message; the line is reported separately.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, strict: true });
  const lineAt = (e: YAMLError) => lines.linePos(e.pos[0]).line;
  const problems: ConfigProblem[] = [];
  for (const e of doc.errors) {
    const p: ConfigProblem = { file: abs, line: lineAt(e), reason: yamlErrorReason(e), severity: 'error' };
    if (e.code === 'DUPLICATE_KEY') {
      const key = formatKeyPath(keyPathAt(doc, e.pos[0]));
      if (key !== '') p.key = key;
    }
    problems.push(p);
  }
  for (const w of doc.warnings) {
    problems.push({ file: abs, line: lineAt(w), reason: `YAML: ${w.message}`, severity: 'warning' });
  }
  if (doc.errors.length > 0) return { source: null, problems };

  if (!isMap(doc.contents)) {
    const what = doc.contents === null ? 'is empty' : isSeq(doc.contents) ? 'is a list' : 'is a single value';
    const line = doc.contents?.range ? lines.linePos(doc.contents.range[0]).line : undefined;
    return {
      source: null,
      problems: [...problems, ...fail(`${what}; a config file must be a mapping of "key: value" settings (see deploy/examples/)`, line).problems],
    };
  }

  let data: unknown;
  try {
    // The alias cap stops a "billion laughs" file from exhausting memory.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { source: null, problems: [...problems, ...fail(`cannot be converted to data: ${(err as Error).message}`).problems] };
  }
  return { source: new ConfigSource(abs, data as Record<string, unknown>, doc, lines), problems };
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return typeof key === 'string' ? key : undefined;
}

/** Key path of the mapping key that starts at or contains `offset` (used to name duplicate keys). */
function keyPathAt(doc: Document.Parsed, offset: number): (string | number)[] {
  const out: (string | number)[] = [];
  const within = (n: unknown): n is YamlNode => isNode(n) && !!n.range && n.range[0] <= offset && offset < n.range[2];
  let node: unknown = doc.contents;
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => within(p.key) || within(p.value));
      if (!pair) return out;
      const k = keyText(pair.key);
      if (k === undefined) return out;
      out.push(k);
      if (within(pair.key)) return out;
      node = pair.value;
    } else if (isSeq(node)) {
      const i = node.items.findIndex(within);
      if (i < 0) return out;
      out.push(i);
      node = node.items[i];
    } else {
      return out;
    }
  }
}

function yamlErrorReason(e: YAMLError): string {
  switch (e.code) {
    case 'DUPLICATE_KEY':
      return 'key appears twice in the same mapping; keep only one of them';
    case 'MULTIPLE_DOCS':
      return 'the file holds more than one YAML document (a "---" line); keep only one';
    case 'TAB_AS_INDENT':
      return 'YAML syntax error: tabs cannot indent YAML; indent with spaces';
    default:
      return `YAML syntax error: ${e.message}; fix the syntax on this line `
        + '(quote values that contain ": " or " #", or that start with [ { * & ! | > \' " % @ `)';
  }
}

function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'does not exist; check the path (see deploy/examples/ for a starting point)';
  if (code === 'EACCES') return 'cannot be read: permission denied; run as a user that can read it or fix its permissions';
  if (code === 'ENOTDIR') return 'a component of the path is not a directory; check the path';
  return `cannot be read: ${(err as Error).message}`;
}
