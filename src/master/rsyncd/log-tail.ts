// What the rsync daemon says: its log file followed from where it ended at
// start, and its stdout/stderr split into lines, each cleaned of rsync's own
// timestamp.
import { open, type FileHandle } from 'node:fs/promises';
import { StringDecoder } from 'node:string_decoder';

const LOG_POLL_MS = 200;
/** The log file is emptied once read past this size: nothing else rotates it. */
export const LOG_MAX_BYTES = 1024 * 1024;
/** rsync's own "YYYY/MM/DD hh:mm:ss " prefix; the master's logger adds a time already. */
const RSYNC_TIME_PREFIX = /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /;

/** A daemon log line as the master reports it: without rsync's timestamp; '' when nothing is left. */
export function daemonLogText(line: string): string {
  return line.replace(RSYNC_TIME_PREFIX, '').trimEnd();
}

/** Follows the daemon's log file from where it ended when the daemon started. */
export class LogTail {
  private offset = 0;
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private timer: NodeJS.Timeout | null = null;
  private reading: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly handle: FileHandle,
    private readonly onLine: (line: string) => void,
    private readonly maxBytes: number,
  ) {}

  static async open(path: string, onLine: (line: string) => void, maxBytes = LOG_MAX_BYTES): Promise<LogTail> {
    // 'a+' creates the file (0600) and allows truncating it; rsync appends.
    const handle = await open(path, 'a+', 0o600);
    const t = new LogTail(handle, onLine, maxBytes);
    t.offset = (await handle.stat()).size;
    t.timer = setInterval(() => void t.poll(), LOG_POLL_MS);
    t.timer.unref();
    return t;
  }

  /** Reads what is left, hands on a last unterminated line, and closes the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    await this.poll(true);
    const rest = this.partial + this.decoder.end();
    if (rest !== '') this.onLine(rest);
    this.partial = '';
    await this.handle.close();
  }

  private poll(final = false): Promise<void> {
    if (this.closed && !final) return this.reading;
    this.reading = this.reading.then(() => this.read()).catch(() => undefined);
    return this.reading;
  }

  private async read(): Promise<void> {
    const { size } = await this.handle.stat();
    if (size < this.offset) this.offset = 0; // emptied by someone else
    const buf = Buffer.alloc(64 * 1024);
    while (this.offset < size) {
      const { bytesRead } = await this.handle.read(buf, 0, Math.min(buf.length, size - this.offset), this.offset);
      if (bytesRead === 0) break;
      this.offset += bytesRead;
      const lines = (this.partial + this.decoder.write(buf.subarray(0, bytesRead))).split('\n');
      this.partial = lines.pop()!;
      for (const l of lines) this.onLine(l);
    }
    if (this.offset > this.maxBytes && this.partial === '') {
      // rsync writes with O_APPEND, so its next line lands at the new end.
      // A line written between the read above and this is lost; rare, and
      // better than a log that grows for as long as the master runs.
      await this.handle.truncate(0);
      this.offset = 0;
    }
  }
}

/** Calls onLine for every line of a text stream, the last one even without a newline. */
export function splitLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  stream.on('end', () => {
    if (buf !== '') onLine(buf);
    buf = '';
  });
}
