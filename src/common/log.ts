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

function fmtValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v) ?? String(v);
}

function write(level: Level, msg: string, fields: Record<string, unknown>): void {
  if (!logs(level)) return;
  const time = new Date().toISOString();
  let line: string;
  if (options.json) {
    line = JSON.stringify({ time, level, msg, ...fields }, (_k, v: unknown) => (v instanceof Error ? v.message : v));
  } else {
    const extra = Object.entries(fields)
      .map(([k, v]) => `${k}=${fmtValue(v)}`)
      .join(' ');
    line = `${time} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? ' ' + extra : ''}`;
  }
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
