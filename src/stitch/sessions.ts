/**
 * A small LRU of sessions keyed by what makes them reusable (receiver, cut, stitch
 * shape): cells whose graphs differ only in the stitch's weights share one session
 * (the weights are fed or loaded per cell), which saves building an ONNX Runtime
 * session and a training graph per cell.
 *
 * Every live session holds its model's weights and ONNX Runtime's arena, which keeps
 * the largest batch the session ever ran (hundreds of MB for a full-size network at
 * batch 256), so the number kept is what bounds a grid's memory: at most `capacity`
 * sessions are kept, and the least recently used one is released as soon as another
 * is added. A session in use (inside `with`) is never released under its user: an
 * evicted one goes when its last use ends, so at most `capacity` + the sessions in use
 * are alive at any time.
 */
interface Entry<T> {
  session: Promise<T>;
  /** uses in progress (inside `with`) */
  uses: number;
  /** dropped from the cache while in use: released when the last use ends */
  evicted: boolean;
}

export class SessionCache<T extends { release(): Promise<void> }> {
  private readonly items = new Map<string, Entry<T>>();
  /** evicted entries still in use */
  private readonly leaving = new Set<Entry<T>>();
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new Error(`SessionCache capacity must be an integer >= 0, got ${capacity}`);
  }
  hits = 0;
  misses = 0;
  /** sessions released so far (evicted, or released with the cache) */
  released = 0;

  /** Sessions alive now: kept for reuse, or evicted and still in use. */
  get live(): number {
    return this.items.size + this.leaving.size;
  }

  /**
   * Runs `use` with the session under `key`, which stays alive until `use` ends; with no
   * key (a session nothing else may reuse, e.g. one with baked-in statistics) with a
   * session of its own, released afterwards.
   */
  async with<R>(key: string | undefined, create: () => Promise<T>, use: (session: T) => Promise<R>): Promise<R> {
    if (key === undefined) {
      const session = await create();
      try {
        return await use(session);
      } finally {
        await session.release();
        this.released++;
      }
    }
    const entry = this.entry(key, create);
    entry.uses++;
    try {
      await this.evict();
      return await use(await entry.session);
    } finally {
      entry.uses--;
      if (entry.evicted && entry.uses === 0) await this.drop(entry);
    }
  }

  async release(): Promise<void> {
    const all = [...this.items.values()];
    this.items.clear();
    for (const e of all) await this.retire(e);
  }

  private entry(key: string, create: () => Promise<T>): Entry<T> {
    const have = this.items.get(key);
    if (have) {
      this.hits++;
      this.items.delete(key);
      this.items.set(key, have);
      return have;
    }
    this.misses++;
    const entry: Entry<T> = { session: create(), uses: 0, evicted: false };
    this.items.set(key, entry);
    entry.session.catch(() => {
      if (this.items.get(key) === entry) this.items.delete(key);
    });
    return entry;
  }

  /** Drops the least recently used entries beyond capacity (those in use leave when their use ends). */
  private async evict(): Promise<void> {
    while (this.items.size > this.capacity) {
      const [oldest, e] = this.items.entries().next().value as [string, Entry<T>];
      this.items.delete(oldest);
      await this.retire(e);
    }
  }

  /** An entry out of the cache: released now, or when its last use ends. */
  private async retire(e: Entry<T>): Promise<void> {
    e.evicted = true;
    if (e.uses === 0) await this.drop(e);
    else this.leaving.add(e);
  }

  private async drop(e: Entry<T>): Promise<void> {
    this.leaving.delete(e);
    const s = await e.session.catch(() => undefined);
    if (!s) return;
    await s.release();
    this.released++;
  }
}
