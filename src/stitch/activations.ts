/**
 * Activations at a cut, batch by batch, for any order of a fixed image list: read from
 * an in-memory cache when the whole list's activations fit under the cache cap (filled
 * in one dataset pass, then reused by every cell with the same sender cut), otherwise
 * computed on the fly by the prefix network. Either way the caller sees the same
 * batches, so caching changes speed only.
 */
import type { Model } from '../onnx/types.js';
import type { Dataset, Normalization } from '../data/types.js';
import { loadBatch } from '../data/batches.js';
import { numel } from '../onnx/tensor.js';
import { ModelSession, type SessionOptions } from '../runtime/session.js';
import { info } from '../util/progress.js';
import { prefixModel } from './compose.js';
import { imageInput } from '../onnx/dominators.js';
import { SessionCache } from './sessions.js';

/** A fixed list of dataset images (a split, possibly a subset), addressed by position. */
export interface ImageList {
  ds: Dataset;
  /** dataset indices; position p is image indices[p] */
  indices: Int32Array;
  /** a short name for messages and cache keys ("train", "test") */
  name: string;
}

/** A network whose activations are read: the model, its input normalisation, an id for cache keys. */
export interface Source {
  id: string;
  model: Model;
  normalization: Normalization;
}

/** Where activations are read: a cut tensor, its per-image shape, its batch axis (absent: 0) and a channels-last image's channel axis. */
export interface ActivationCut {
  tensor: string;
  shape: readonly number[];
  batchAxis?: number;
  channelAxis?: number;
}

export interface ActivationBatch {
  /** activations [size, ...shape] */
  x: Float32Array;
  size: number;
  /** positions in the image list */
  positions: Int32Array;
  /** dataset labels */
  labels: Int32Array;
}

export interface StoreOptions {
  /** cap on cached activations, bytes (0: never cache) */
  cacheBytes: number;
  session: SessionOptions;
  /** batch size of prefix inference */
  batchSize?: number;
  /**
   * Prefix sessions kept for reuse (default 2: a cell reads a sender's and a receiver's
   * activations in lockstep). Each holds its part of the network and ONNX Runtime's
   * arena sized for a batch, so they, not the cut count, bound the store's memory.
   */
  sessions?: number;
}

interface Entry {
  data: Float32Array;
  perImage: number;
  lastUse: number;
  /** generators reading it now: never evicted under them (their batches come from it) */
  readers: number;
}

/** A fill in progress and how many more callers wait for it (each becomes a reader). */
interface Filling {
  entry: Promise<Entry>;
  waiters: number;
}

export class ActivationStore {
  private readonly cache = new Map<string, Entry>();
  private readonly filling = new Map<string, Filling>();
  private readonly sessions: SessionCache<ModelSession>;
  /** bytes of cached entries and of fills in progress (reserved before a fill starts) */
  private used = 0;
  private clock = 0;
  /** counters for reports and the benchmark */
  readonly stats = { cacheFills: 0, streamedBatches: 0, cachedBatches: 0 };

  constructor(private readonly opts: StoreOptions) {
    this.sessions = new SessionCache<ModelSession>(opts.sessions ?? 2);
  }

  /** Bytes of cached activations (and fills in progress): never more than the cap. */
  get cachedBytes(): number {
    return this.used;
  }

  /** Prefix sessions alive now. */
  get liveSessions(): number {
    return this.sessions.live;
  }

  /**
   * Batches of activations of `src` at a cut (batch-first, `cut.shape` per image) for the
   * images at `order` (positions in `list`), in that order.
   */
  async *batches(src: Source, cut: ActivationCut, list: ImageList, order: Int32Array, batchSize: number, dropLast = false): AsyncGenerator<ActivationBatch> {
    const perImage = numel(cut.shape);
    const entry = await this.cached(src, cut, perImage, list);
    try {
      const count = dropLast ? Math.floor(order.length / batchSize) : Math.ceil(order.length / batchSize);
      for (let k = 0; k < count; k++) {
        const positions = order.subarray(k * batchSize, Math.min(order.length, (k + 1) * batchSize));
        const labels = Int32Array.from(positions, (p) => list.ds.label(list.indices[p]!));
        if (entry) {
          const x = new Float32Array(positions.length * perImage);
          positions.forEach((p, i) => x.set(entry.data.subarray(p * perImage, (p + 1) * perImage), i * perImage));
          this.stats.cachedBatches++;
          yield { x, size: positions.length, positions, labels };
        } else {
          this.stats.streamedBatches++;
          yield { x: await this.compute(src, cut, list, positions), size: positions.length, positions, labels };
        }
      }
    } finally {
      if (entry) entry.readers--;
    }
  }

  /** Frees cached activations and sessions. */
  async release(): Promise<void> {
    this.cache.clear();
    this.used = 0;
    await this.sessions.release();
  }

  /** The cached entry (counted as one more reader), filling it if it fits; undefined: stream. */
  private async cached(src: Source, cut: ActivationCut, perImage: number, list: ImageList): Promise<Entry | undefined> {
    const tensor = cut.tensor;
    const key = `${src.id}|${tensor}|${list.name}`;
    const have = this.cache.get(key);
    if (have) {
      have.lastUse = ++this.clock;
      have.readers++;
      return have;
    }
    const pending = this.filling.get(key);
    if (pending) {
      pending.waiters++;
      return pending.entry;
    }
    const bytes = perImage * list.indices.length * 4;
    if (!this.makeRoom(bytes)) return undefined;
    // reserved now: fills that run side by side (a sender's and a receiver's) never overshoot the cap together
    this.used += bytes;
    const filling: Filling = { entry: this.fill(src, cut, perImage, list, bytes), waiters: 0 };
    this.filling.set(key, filling);
    try {
      const entry = await filling.entry;
      entry.readers = 1 + filling.waiters;
      this.cache.set(key, entry);
      return entry;
    } catch (e) {
      this.used -= bytes;
      throw e;
    } finally {
      this.filling.delete(key);
    }
  }

  private async fill(src: Source, cut: ActivationCut, perImage: number, list: ImageList, bytes: number): Promise<Entry> {
    const data = new Float32Array(perImage * list.indices.length);
    const bs = this.opts.batchSize ?? 256;
    for (let start = 0; start < list.indices.length; start += bs) {
      const positions = Int32Array.from({ length: Math.min(bs, list.indices.length - start) }, (_, i) => start + i);
      data.set(await this.compute(src, cut, list, positions), start * perImage);
    }
    this.stats.cacheFills++;
    info(
      `cached ${src.id} ${cut.tensor} on ${list.indices.length} ${list.name} images (${(bytes / 2 ** 20).toFixed(0)} MiB; ${(this.used / 2 ** 20).toFixed(0)} of ${(this.opts.cacheBytes / 2 ** 20).toFixed(0)} MiB in use)`,
    );
    return { data, perImage, lastUse: ++this.clock, readers: 0 };
  }

  /**
   * Evicts least recently used entries until `bytes` more fit under the cap; false (cache
   * nothing, stream) when they cannot: too big, or what is left is being read.
   */
  private makeRoom(bytes: number): boolean {
    if (bytes > this.opts.cacheBytes) return false;
    while (this.used + bytes > this.opts.cacheBytes) {
      let oldest: string | undefined;
      let t = Infinity;
      for (const [k, e] of this.cache)
        if (e.readers === 0 && e.lastUse < t) {
          t = e.lastUse;
          oldest = k;
        }
      if (oldest === undefined) return false;
      this.used -= this.cache.get(oldest)!.data.length * 4;
      this.cache.delete(oldest);
    }
    return true;
  }

  /** Runs the prefix of `src` up to the cut on the images at `positions`. */
  private async compute(src: Source, cut: ActivationCut, list: ImageList, positions: Int32Array): Promise<Float32Array> {
    const tensor = cut.tensor;
    const idx = Array.from(positions, (p) => list.indices[p]!);
    const batch = await loadBatch(list.ds, idx, { normalization: src.normalization });
    const [c, h, w] = list.ds.shape;
    const input = imageInput(src.model);
    const create = (): Promise<ModelSession> => ModelSession.create(prefixModel(src.model, cut), this.opts.session);
    return this.sessions.with(`${src.id}|${tensor}`, create, async (session) => {
      const out = await session.run({ [input]: { dims: [idx.length, c, h, w], data: batch.x } }, [tensor]);
      return out[tensor]!.data as Float32Array;
    });
  }
}
