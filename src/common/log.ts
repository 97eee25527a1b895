// Logs go to stderr (journald picks them up) or to --log-file, as text lines
// by default or JSON lines with INOSYNC_LOG_FORMAT=json.
import { appendFileSync } from 'node:fs';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LogOptions {
  level: Level;
  json?: boolean;
  file?: string;
}

let options: LogOptions = { level: 'info', json: process.env.INOSYNC_LOG_FORMAT === 'json' };

export function configureLogging(o: Partial<LogOptions>): void {
  options = { ...options, ...o };
}

/** Whether `level` is written: lets a hot path skip building the fields of a line nobody reads. */
export function logs(level: Level): boolean {
  return ORDER[level] >= ORDER[options.level];
}

// Anything logged may come from the network (an agent's version, a path, an
// error message), and a terminal showing the log interprets control
// characters: ESC and the C1 CSI (U+009B) start escape sequences, CR and
// newline forge or hide lines. Every C0 and C1 character and DEL is written as
// an escape, in both formats. U+2028/U+2029 too, which some viewers break on.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeChar(c: string): string {
  return SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** `s` with every control character written as an escape (\n, \u001b, \u009b). */
export function escapeControls(s: string): string {
  return s.replace(CONTROL, escapeChar);
}

/**
 * JSON.stringify escapes C0 but leaves DEL, C1 and U+2028/9 raw. Outside
 * strings its output is ASCII, so escaping them anywhere in it keeps it
 * valid JSON with the same meaning.
 */
function safeJson(v: unknown): string | undefined {
  return JSON.stringify(v, (_k, x: unknown) => (x instanceof Error ? x.message : x))?.replace(CONTROL, escapeChar);
}

/** A bare word stays bare; anything with space, quote, `=`, backslash or a control character is quoted. */
const BARE = /^[^\s"=\\\u0000-\u001f\u007f-\u009f]+$/;

function fmtValue(v: unknown): string {
  if (typeof v === 'string') return BARE.test(v) ? v : safeJson(v)!;
  if (v instanceof Error) return safeJson(v.message)!;
  return safeJson(v) ?? escapeControls(String(v));
}

/** One log line without its newline: the pure part of logging. */
export function formatLogLine(time: string, level: Level, msg: string, fields: Record<string, unknown>, json: boolean): string {
  if (json) return safeJson({ time, level, msg, ...fields })!;
  const extra = Object.entries(fields)
    .map(([k, v]) => `${escapeControls(k)}=${fmtValue(v)}`)
    .join(' ');
  return `${time} ${level.toUpperCase().padEnd(5)} ${escapeControls(msg)}${extra ? ' ' + extra : ''}`;
}

function write(level: Level, msg: string, fields: Record<string, unknown>): void {
  if (!logs(level)) return;
  const line = formatLogLine(new Date().toISOString(), level, msg, fields, options.json === true);
  if (options.file) {
    try {
      appendFileSync(options.file, line + '\n');
      return;
    } catch {
      // fall back to stderr so the message is not lost
    }
  }
  process.stderr.write(line + '\n');
}

export function makeLogger(base: Record<string, unknown> = {}): Logger {
  return {
    debug: (m, f) => write('debug', m, { ...base, ...f }),
    info: (m, f) => write('info', m, { ...base, ...f }),
    warn: (m, f) => write('warn', m, { ...base, ...f }),
    error: (m, f) => write('error', m, { ...base, ...f }),
    child: (f) => makeLogger({ ...base, ...f }),
  };
}

export const log = makeLogger();
