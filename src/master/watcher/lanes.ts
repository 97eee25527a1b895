// One lane per path: checks of the same path run one after the other, in the
// order their events arrived, while different paths proceed in parallel. A
// check that looks at the filesystem and then changes what is watched (a
// directory deleted and re-created under the same name) must not be
// overtaken by a later check of the same path.

export class PathLanes<T> {
  private readonly lanes = new Map<string, Promise<T | null>>();

  /** Runs `check` after every earlier check of `rel`; a throwing check yields null. */
  run(rel: string, check: () => Promise<T | null>): Promise<T | null> {
    const before = this.lanes.get(rel) ?? Promise.resolve(null);
    const mine = before.then(check, check).catch(() => null);
    this.lanes.set(rel, mine);
    void mine.finally(() => {
      if (this.lanes.get(rel) === mine) this.lanes.delete(rel);
    });
    return mine;
  }

  /** A check of `rel` has been queued and has not finished yet. */
  busy(rel: string): boolean {
    return this.lanes.has(rel);
  }
}
