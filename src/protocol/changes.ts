// What changed under one watched path, as both sides understand it.
// Relative paths use '/' separators, never start or end with '/', and never
// contain '.', '..' or empty segments (see relpath.ts).

/**
 * - `file`: one entry (file, symlink, or something deleted): only it is synced.
 * - `dir`: a directory's own attributes: the directory itself, not its contents.
 * - `tree`: a directory and everything below it (new, deleted, renamed, or collapsed).
 */
export type ChangeKind = 'file' | 'dir' | 'tree';

export interface PathChanges {
  /** name of the watched path (the rsync module) */
  name: string;
  /** true: sync the whole path; the lists below are then empty */
  full: boolean;
  files: string[];
  dirs: string[];
  trees: string[];
}
