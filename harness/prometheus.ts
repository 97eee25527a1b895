// A strict parser for the Prometheus text exposition format 0.0.4: it fails
// (with an AssertionError naming the line) on anything Prometheus would
// reject, so a test that parses /metrics proves a scraper can read it.
import assert from 'node:assert/strict';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const VALUE = /^(?:NaN|[+-]Inf|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/;

export interface ParsedFamily {
  help: string;
  type: string;
}
export interface Parsed {
  families: Map<string, ParsedFamily>;
  /** key: name plus sorted labels, values unescaped */
  samples: Map<string, number>;
}

export function seriesKey(name: string, labels: Record<string, string>): string {
  const l = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(',');
  return `${name}{${l}}`;
}

function parseLabels(text: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1; // past '{'
  if (text[i] === '}') return { labels, rest: text.slice(i + 1) };
  for (;;) {
    const eq = text.indexOf('=', i);
    assert.ok(eq > i, `line ${line}: label without '='`);
    const name = text.slice(i, eq);
    assert.match(name, LABEL_NAME, `line ${line}: bad label name ${name}`);
    assert.ok(!(name in labels), `line ${line}: duplicate label ${name}`);
    assert.equal(text[eq + 1], '"', `line ${line}: label value must be quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      const c = text[j];
      assert.ok(c !== undefined, `line ${line}: unterminated label value`);
      if (c === '"') break;
      if (c === '\\') {
        const e = text[j + 1];
        assert.ok(e === '\\' || e === '"' || e === 'n', `line ${line}: bad escape \\${e}`);
        value += e === 'n' ? '\n' : e;
        j += 2;
        continue;
      }
      value += c;
      j++;
    }
    labels[name] = value;
    j++;
    if (text[j] === '}') return { labels, rest: text.slice(j + 1) };
    assert.equal(text[j], ',', `line ${line}: expected ',' or '}' after a label`);
    i = j + 1;
  }
}

export function parseExposition(text: string): Parsed {
  assert.ok(text.endsWith('\n'), 'exposition must end with a newline');
  const families = new Map<string, ParsedFamily>();
  const partial = new Map<string, Partial<ParsedFamily>>();
  const samples = new Map<string, number>();
  const finished = new Set<string>();
  let current: string | null = null;
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    assert.ok(raw.length > 0, `line ${line}: empty line`);
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(raw);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, 'HELP' | 'TYPE', string, string];
      assert.match(name, METRIC_NAME, `line ${line}: bad metric name`);
      assert.ok(!finished.has(name) && !samples.has(name) && ![...samples.keys()].some((k) => k.startsWith(name + '{')), `line ${line}: ${kind} for ${name} after its samples`);
      const f = partial.get(name) ?? {};
      if (kind === 'HELP') {
        assert.equal(f.help, undefined, `line ${line}: second HELP for ${name}`);
        assert.ok(!/\\(?![\\n])/.test(rest), `line ${line}: bad escape in HELP`);
        f.help = rest;
      } else {
        assert.equal(f.type, undefined, `line ${line}: second TYPE for ${name}`);
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest), `line ${line}: bad type ${rest}`);
        if (rest === 'counter') assert.ok(name.endsWith('_total'), `counter ${name} must end in _total`);
        f.type = rest;
      }
      partial.set(name, f);
      if (current !== name && current !== null) finished.add(current);
      current = name;
      return;
    }
    assert.ok(!raw.startsWith('#'), `line ${line}: unexpected comment ${raw}`);
    const m = /^([^{ ]+)(.*)$/.exec(raw);
    assert.ok(m, `line ${line}: not a sample`);
    const name = m[1]!;
    assert.match(name, METRIC_NAME, `line ${line}: bad metric name ${name}`);
    const f = partial.get(name);
    assert.ok(f?.help !== undefined && f.type !== undefined, `line ${line}: ${name} has no HELP and TYPE before its samples`);
    assert.ok(!finished.has(name), `line ${line}: samples of ${name} are not contiguous`);
    if (current !== name && current !== null) finished.add(current);
    current = name;
    let labels: Record<string, string> = {};
    let rest = m[2]!;
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, line));
    assert.ok(rest.startsWith(' ') && !rest.startsWith('  '), `line ${line}: one space before the value`);
    const value = rest.slice(1);
    assert.match(value, VALUE, `line ${line}: bad value ${value}`);
    const key = seriesKey(name, labels);
    assert.ok(!samples.has(key), `line ${line}: duplicate series ${key}`);
    samples.set(key, value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value));
    families.set(name, f as ParsedFamily);
  });
  for (const [name, f] of partial) if (f.help !== undefined && f.type !== undefined) families.set(name, f as ParsedFamily);
  return { families, samples };
}

export function sample(p: Parsed, name: string, labels: Record<string, string> = {}): number | undefined {
  return p.samples.get(seriesKey(name, labels));
}
