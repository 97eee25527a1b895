// Logged values may come from the network; a terminal reading the log must
// see their control characters as escapes, never act on them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configureLogging, escapeControls, formatLogLine, makeLogger } from '../../src/common/log.js';

const TIME = '2026-12-03T18:00:00.000Z';
/** C0, DEL, C1 and the two Unicode line breaks: none may reach the log raw. */
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

const CASES: Array<{ name: string; value: string; escaped: string }> = [
  { name: 'ESC[2J (clear screen)', value: '1.0\u001b[2J', escaped: '1.0\\u001b[2J' },
  { name: 'BEL', value: 'ring\u0007', escaped: 'ring\\u0007' },
  { name: 'C1 CSI (U+009B)', value: '1.0\u009b2J', escaped: '1.0\\u009b2J' },
  { name: 'newline forging a line', value: `1.0\n${TIME} ERROR forged`, escaped: `1.0\\n${TIME} ERROR forged` },
  { name: 'carriage return', value: 'ok\rhidden', escaped: 'ok\\rhidden' },
  { name: 'DEL', value: 'a\u007fb', escaped: 'a\\u007fb' },
  { name: 'NEL (U+0085) and LINE SEPARATOR', value: 'a\u0085b\u2028c', escaped: 'a\\u0085b\\u2028c' },
];

describe('log lines carry control characters only as escapes', () => {
  for (const c of CASES) {
    it(`text: ${c.name}, as a field value, a nested value, an error, a key and the message`, () => {
      const line = formatLogLine(TIME, 'info', `agent says ${c.value}`, {
        version: c.value,
        nested: { v: c.value },
        err: new Error(c.value),
        [`k${c.value}`]: 1,
      }, false);
      assert.doesNotMatch(line, RAW_CONTROL, JSON.stringify(line));
      assert.ok(line.startsWith(`${TIME} INFO  agent says ${c.escaped} `), line);
      assert.ok(line.includes(`version="${c.escaped}"`), line);
      assert.ok(line.includes(`nested={"v":"${c.escaped}"}`), line);
      assert.ok(line.includes(`err="${c.escaped}"`), line);
      assert.ok(line.includes(`k${c.escaped}=1`), line);
    });

    it(`json: ${c.name} is escaped and reads back unchanged`, () => {
      const line = formatLogLine(TIME, 'warn', c.value, { version: c.value, nested: [c.value], err: new Error(c.value) }, true);
      assert.doesNotMatch(line, RAW_CONTROL, JSON.stringify(line));
      assert.ok(line.includes(`"version":"${c.escaped}"`), line);
      assert.deepEqual(JSON.parse(line), { time: TIME, level: 'warn', msg: c.value, version: c.value, nested: [c.value], err: c.value });
    });
  }

  it('leaves ordinary text alone: bare words bare, printable Unicode raw, quotes only where needed', () => {
    assert.equal(
      formatLogLine(TIME, 'error', 'rsync failed', { path: 'www', file: 'café/ü.txt', why: 'no space', n: 3 }, false),
      `${TIME} ERROR rsync failed path=www file=café/ü.txt why="no space" n=3`,
    );
    assert.equal(formatLogLine(TIME, 'info', 'x', { s: 'a\\u001b' }, false), `${TIME} INFO  x s="a\\\\u001b"`, 'a literal backslash is quoted, so it cannot pass for an escape');
    assert.equal(escapeControls('tab\there'), 'tab\\there');
  });

  it('writes one line per call through the logger, in both formats', () => {
    const dir = mkdtempSync(join(tmpdir(), 'inosync-log-test-'));
    try {
      const file = join(dir, 'log');
      const log = makeLogger({ node: 'm1\u009b' });
      for (const json of [false, true]) {
        configureLogging({ level: 'info', json, file });
        for (const c of CASES) log.info(`hello ${c.value}`, { version: c.value });
      }
      const text = readFileSync(file, 'utf8');
      assert.doesNotMatch(text.replaceAll('\n', ''), RAW_CONTROL);
      const lines = text.split('\n').slice(0, -1);
      assert.equal(lines.length, CASES.length * 2, 'no value started a line of its own');
      assert.ok(lines.every((l) => l.startsWith(`${TIME.slice(0, 2)}`) || l.startsWith('{"time":"')), text);
      assert.ok(lines.slice(CASES.length).every((l) => JSON.parse(l).node === 'm1\u009b'));
    } finally {
      configureLogging({ file: undefined, json: false });
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
