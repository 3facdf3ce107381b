/**
 * A small LRU of sessions keyed by what makes them reusable (receiver, cut, stitch
 * shape): cells whose graphs differ only in the stitch's weights share one session
 * (the weights are fed or loaded per cell), which saves building an ONNX Runtime
 * session and a training graph per cell.
 */
export class SessionCache<T extends { release(): Promise<void> }> {
  private readonly items = new Map<string, Promise<T>>();
  constructor(private readonly capacity: number) {}
  hits = 0;
  misses = 0;

  async get(key: string, create: () => Promise<T>): Promise<T> {
    const have = this.items.get(key);
    if (have) {
      this.hits++;
      this.items.delete(key);
      this.items.set(key, have);
      return have;
    }
    this.misses++;
    const p = create();
    this.items.set(key, p);
    p.catch(() => this.items.delete(key));
    while (this.items.size > this.capacity) {
      const [oldest, s] = this.items.entries().next().value as [string, Promise<T>];
      this.items.delete(oldest);
      await (await s).release();
    }
    return p;
  }

  /**
   * Runs `use` with the session under `key`; with no key (a session nothing else may reuse,
   * e.g. one with baked-in statistics) with a session of its own, released afterwards.
   */
  async with<R>(key: string | undefined, create: () => Promise<T>, use: (session: T) => Promise<R>): Promise<R> {
    if (key !== undefined) return use(await this.get(key, create));
    const session = await create();
    try {
      return await use(session);
    } finally {
      await session.release();
    }
  }

  async release(): Promise<void> {
    for (const s of this.items.values()) await (await s.catch(() => undefined))?.release();
    this.items.clear();
  }
}
