// Pending changes for one watched path, bounded in memory whatever the event
// rate. The master keeps one per node and path until the node has applied
// them; the agent keeps one per path to merge batches that arrive while rsync
// runs. Both send or apply the result as one PathChanges.
//
// Entries live in a trie keyed by path segment, so an add costs O(depth)
// however many entries there are, and a tree entry drops everything below it
// by cutting one branch.
//
// Rules (each keeps the set canonical, so toChanges never lists an entry that
// another one covers):
// - A tree covers its subtree: adds below it are no-ops, and adding it drops
//   the entries below.
// - A path seen both as a non-directory (`file`) and as a directory (`dir`, or
//   with entries below it) changed type while pending. Only a tree entry makes
//   rsync both replace it on the mirror and bring what is below it now, so the
//   path becomes a tree.
// - Past `limit` entries the set collapses (see collapse()).
import type { ChangeKind, PathChanges } from './changes.js';
import { relPathProblem } from './relpath.js';

const FILE = 1;
const DIR = 2;
const TREE = 4;

class Node {
  children: Map<string, Node> | null = null;
  /** 0, FILE, DIR or TREE: one at most, thanks to the type-change rule */
  mark = 0;
  /** entries in this subtree, this node's own included */
  count = 0;
  constructor(
    readonly name: string,
    readonly parent: Node | null,
    readonly depth: number,
  ) {}
}

export class ChangeSet {
  readonly #limit: number;
  #root = new Node('', null, 0);
  #full = false;

  /** `limit`: entries held before collapsing (a positive integer). */
  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`ChangeSet limit must be a positive integer, got ${limit}`);
    this.#limit = limit;
  }

  static from(changes: PathChanges, limit: number): ChangeSet {
    const cs = new ChangeSet(limit);
    cs.merge(changes);
    return cs;
  }

  /** True when the whole path must be synced; no entries are kept then. */
  get full(): boolean {
    return this.#full;
  }

  /** Entries held; a full set counts as one (a tree at the root). */
  get size(): number {
    return this.#full ? 1 : this.#root.count;
  }

  get isEmpty(): boolean {
    return !this.#full && this.#root.count === 0;
  }

  /** `rel` '' is the root itself, which can only mean a full sync. */
  add(rel: string, kind: ChangeKind): void {
    if (kind !== 'file' && kind !== 'dir' && kind !== 'tree') throw new TypeError(`unknown change kind ${JSON.stringify(kind)}`);
    if (rel === '') return this.markFull();
    const problem = relPathProblem(rel);
    if (problem) throw new TypeError(`bad relative path ${JSON.stringify(rel)}: ${problem}`);
    if (this.#full) return;

    let node = this.#root;
    for (const seg of rel.split('/')) {
      if (node.mark === TREE) return;
      if (node.mark === FILE) {
        // A non-directory that now has something below it: type change.
        this.#makeTree(node);
        return this.#bound();
      }
      let child = node.children?.get(seg);
      if (!child) {
        child = new Node(seg, node, node.depth + 1);
        (node.children ??= new Map()).set(seg, child);
      }
      node = child;
    }

    const had = node.mark;
    if (had === TREE) return;
    const typeChange = (kind === 'file' && (had === DIR || node.children !== null)) || (kind === 'dir' && had === FILE);
    if (kind === 'tree' || typeChange) this.#makeTree(node);
    else if (had === 0) {
      node.mark = kind === 'file' ? FILE : DIR;
      addCount(node, 1);
    }
    this.#bound();
  }

  markFull(): void {
    this.#full = true;
    this.#root = new Node('', null, 0);
  }

  merge(other: ChangeSet | PathChanges): void {
    if (other.full) return this.markFull();
    if (this.#full) return;
    // Trees first: what they cover then costs nothing, and cannot push the
    // set over its limit only to be dropped a moment later.
    const c = other instanceof ChangeSet ? other.toChanges('') : other;
    for (const t of c.trees) this.add(t, 'tree');
    for (const d of c.dirs) this.add(d, 'dir');
    for (const f of c.files) this.add(f, 'file');
  }

  /** Sorted lists, no entry covered by another. */
  toChanges(name: string): PathChanges {
    const out: PathChanges = { name, full: this.#full, files: [], dirs: [], trees: [] };
    if (this.#full) return out;
    const stack: Array<[Node, string]> = [[this.#root, '']];
    while (stack.length > 0) {
      const [node, path] = stack.pop()!;
      if (node.mark === FILE) out.files.push(path);
      else if (node.mark === DIR) out.dirs.push(path);
      else if (node.mark === TREE) out.trees.push(path);
      if (node.children) for (const [seg, child] of node.children) stack.push([child, path === '' ? seg : `${path}/${seg}`]);
    }
    out.files.sort();
    out.dirs.sort();
    out.trees.sort();
    return out;
  }

  clear(): void {
    this.#full = false;
    this.#root = new Node('', null, 0);
  }

  #makeTree(node: Node): void {
    const before = node.count;
    node.mark = TREE;
    node.children = null;
    addCount(node, 1 - before);
  }

  #bound(): void {
    if (!this.#full && this.#root.count > this.#limit) this.#collapse();
  }

  // Precision is traded away from the bottom up: the deepest directory that
  // holds two or more entries (its own included) becomes one tree entry, then
  // the next, until the set is down to half its limit. Deep directories are
  // the cheapest to resync whole and the least likely to hold much. At one
  // depth, the directory holding more entries goes first (it frees the most
  // for the precision it gives up), then the lower path, so the outcome does
  // not depend on insertion order. Directories holding a single entry are
  // skipped: collapsing them would lose precision and free nothing. If
  // collapsing every top-level directory is not enough, the set becomes full.
  //
  // Down to half, not just to the limit: otherwise every add past the limit
  // would pay for a collapse, each walking the whole trie. With the gap, a
  // collapse is paid for by at least limit/2 adds.
  #collapse(): void {
    const target = Math.max(1, Math.floor(this.#limit / 2));
    const byDepth: Node[][] = [];
    const stack: Node[] = [...(this.#root.children?.values() ?? [])];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (!node.children) continue;
      if (node.count >= 2) (byDepth[node.depth] ??= []).push(node);
      for (const child of node.children.values()) stack.push(child);
    }
    for (let depth = byDepth.length - 1; depth >= 1; depth--) {
      const level = byDepth[depth];
      if (!level) continue;
      // Counts at this depth are settled: deeper levels are done, and
      // directories at one depth do not overlap. Some may have dropped to one
      // entry (a single collapsed subdirectory).
      const live = level.filter((n) => n.count >= 2);
      const paths = new Map(live.map((n) => [n, pathOf(n)]));
      live.sort((a, b) => b.count - a.count || compare(paths.get(a)!, paths.get(b)!));
      for (const node of live) {
        if (this.#root.count <= target) return;
        this.#makeTree(node);
      }
    }
    if (this.#root.count > target) this.markFull();
  }
}

function addCount(node: Node, delta: number): void {
  for (let n: Node | null = node; n; n = n.parent) n.count += delta;
}

function pathOf(node: Node): string {
  const segs: string[] = [];
  for (let n: Node | null = node; n && n.parent; n = n.parent) segs.push(n.name);
  return segs.reverse().join('/');
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
