// Random but reproducible filesystem churn on an origin tree: creates, writes,
// appends, renames, moves, deletes, deep trees and awkward names. The fault
// tests use it for bursts, the soak script for minutes on end.
import { lstatSync, readdirSync } from 'node:fs';
import fs from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Rng } from './rng.js';

/** Names rsync, shells and glob matchers all like to get wrong. */
export const ODD_NAMES = [
  'with space',
  ' leading space',
  'trailing space ',
  'ünïcødé-名前',
  'emoji-😀',
  'new\nline',
  'tab\tname',
  '-leading-dash',
  '--looks-like-option',
  'glob*star',
  'what?',
  '[brackets]',
  'back\\slash',
  "quote'single",
  'quote"double',
  '.hidden',
  '~tilde',
  '#hash',
  '%percent%',
  'x'.repeat(200),
];

export interface ChurnStats {
  ops: number;
  created: number;
  written: number;
  renamed: number;
  deleted: number;
  dirs: number;
  failed: number;
}

export interface ChurnOptions {
  /** stop growing beyond this many entries (deletions win then) */
  maxEntries?: number;
  /** largest file written, in bytes */
  maxFileSize?: number;
  /** told every operation, for a replayable record of a run */
  onOp?: (op: string) => void;
}

/**
 * Operates on the real tree (the listing is refreshed now and then), so
 * whatever happened to it — a crash, a test's own edits — it keeps going.
 * Races with nobody: errors from an entry gone meanwhile count as `failed`.
 */
export class Churn {
  readonly stats: ChurnStats = { ops: 0, created: 0, written: 0, renamed: 0, deleted: 0, dirs: 0, failed: 0 };
  private files: string[] = [];
  private dirs: string[] = [''];
  private sinceScan = Infinity;
  private seq = 0;
  private readonly maxEntries: number;
  private readonly maxFileSize: number;
  private readonly onOp: (op: string) => void;

  constructor(
    readonly root: string,
    readonly rng: Rng,
    opts: ChurnOptions = {},
  ) {
    this.maxEntries = opts.maxEntries ?? 3000;
    this.maxFileSize = opts.maxFileSize ?? 256 * 1024;
    this.onOp = opts.onOp ?? (() => undefined);
  }

  private note(op: string, ...paths: string[]): void {
    this.onOp(`${op} ${paths.map((p) => JSON.stringify(p)).join(' ')}`);
  }

  private scan(): void {
    this.files = [];
    this.dirs = [''];
    const walk = (abs: string): void => {
      let names: string[];
      try {
        names = readdirSync(abs);
      } catch {
        return;
      }
      for (const n of names) {
        const p = join(abs, n);
        try {
          const st = lstatSync(p);
          const rel = relative(this.root, p);
          if (st.isDirectory()) {
            this.dirs.push(rel);
            walk(p);
          } else this.files.push(rel);
        } catch {
          // gone meanwhile
        }
      }
    };
    walk(this.root);
    this.sinceScan = 0;
  }

  private name(): string {
    const r = this.rng;
    const base = r.chance(0.25) ? r.pick(ODD_NAMES) : `n${r.int(0, 999)}`;
    return `${base}-${this.seq++}`;
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  private content(): Buffer {
    const r = this.rng;
    const size = r.chance(0.1) ? 0 : r.chance(0.05) ? r.int(64 * 1024, this.maxFileSize) : r.int(1, 4096);
    return r.bytes(size);
  }

  /** One random operation. */
  async step(): Promise<void> {
    if (this.sinceScan++ > 50) this.scan();
    const r = this.rng;
    const entries = this.files.length + this.dirs.length;
    const full = entries > this.maxEntries;
    const roll = r.next();
    this.stats.ops++;
    try {
      if (full ? roll < 0.5 : roll < 0.08) return await this.remove();
      if (roll < 0.35 || this.files.length === 0) return await this.create();
      if (roll < 0.6) return await this.write();
      if (roll < 0.7) return await this.mkdirs();
      if (roll < 0.82) return await this.rename();
      if (roll < 0.88) return await this.chmod();
      if (roll < 0.92) return await this.symlink();
      return await this.remove();
    } catch {
      this.stats.failed++;
      this.sinceScan = Infinity;
    }
  }

  private async create(): Promise<void> {
    const rel = join(this.rng.pick(this.dirs), this.name());
    this.note('create', rel);
    await fs.writeFile(this.abs(rel), this.content());
    this.files.push(rel);
    this.stats.created++;
  }

  private async write(): Promise<void> {
    const rel = this.rng.pick(this.files);
    this.note('write', rel);
    if (this.rng.chance(0.3)) await fs.appendFile(this.abs(rel), this.content());
    else if (this.rng.chance(0.2)) {
      // An editor's save: a temp file renamed over the original.
      const tmp = `${this.abs(rel)}.tmp-${this.seq++}`;
      await fs.writeFile(tmp, this.content());
      await fs.rename(tmp, this.abs(rel));
    } else await fs.writeFile(this.abs(rel), this.content());
    this.stats.written++;
  }

  private async mkdirs(): Promise<void> {
    let rel = this.rng.pick(this.dirs);
    // Far below PATH_MAX, which the mirror's own prefix must fit in too.
    if (Buffer.byteLength(rel) > 1500) rel = '';
    const depth = this.rng.chance(0.1) ? this.rng.int(10, 40) : this.rng.int(1, 3);
    for (let i = 0; i < depth; i++) rel = join(rel, this.rng.chance(0.1) ? this.name() : `d${this.seq++}`);
    this.note('mkdir -p', rel);
    await fs.mkdir(this.abs(rel), { recursive: true });
    this.stats.dirs++;
    this.sinceScan = Infinity;
    if (this.rng.chance(0.7)) {
      for (let i = this.rng.int(1, 5); i > 0; i--) {
        const name = this.name();
        this.note('create', join(rel, name));
        await fs.writeFile(join(this.abs(rel), name), this.content());
      }
    }
  }

  private async rename(): Promise<void> {
    const r = this.rng;
    const moveDir = r.chance(0.3) && this.dirs.length > 1;
    const from = moveDir ? r.pick(this.dirs.slice(1)) : r.pick(this.files);
    let toDir = r.pick(this.dirs);
    // A directory cannot move into itself.
    if (moveDir && (toDir === from || toDir.startsWith(from + '/'))) toDir = '';
    const to = join(toDir, this.name());
    this.note('rename', from, to);
    await fs.rename(this.abs(from), this.abs(to));
    this.stats.renamed++;
    this.sinceScan = Infinity;
  }

  private async chmod(): Promise<void> {
    const rel = this.rng.pick(this.files);
    this.note('chmod', rel);
    await fs.chmod(this.abs(rel), this.rng.pick([0o644, 0o600, 0o755, 0o640, 0o444]));
    this.stats.written++;
  }

  private async symlink(): Promise<void> {
    const rel = join(this.rng.pick(this.dirs), this.name());
    const target = this.rng.chance(0.5) && this.files.length > 0 ? relative(this.rng.pick(this.dirs), this.rng.pick(this.files)) : 'dangling/target';
    this.note('symlink', rel);
    await fs.symlink(target, this.abs(rel));
    this.files.push(rel);
    this.stats.created++;
  }

  private async remove(): Promise<void> {
    const r = this.rng;
    if (r.chance(0.2) && this.dirs.length > 1) {
      const rel = r.pick(this.dirs.slice(1));
      this.note('rm -r', rel);
      await fs.rm(this.abs(rel), { recursive: true, force: true });
      this.sinceScan = Infinity;
    } else {
      if (this.files.length === 0) return;
      const i = r.int(0, this.files.length - 1);
      this.note('rm', this.files[i]!);
      await fs.rm(this.abs(this.files[i]!), { force: true });
      this.files.splice(i, 1);
    }
    this.stats.deleted++;
  }

  /** `n` operations back to back. */
  async burst(n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.step();
  }
}
