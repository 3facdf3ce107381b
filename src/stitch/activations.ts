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
  /** activations [size, ...shape]: read-only, valid until the reader asks for its next batch (the memory is reused) */
  x: Float32Array;
  size: number;
  /** positions in the image list */
  positions: Int32Array;
  /** dataset labels */
  labels: Int32Array;
}

/** The batches of `order` (positions in `list`), in order: their positions and dataset labels; the last one short unless `dropLast` drops it. */
export function* batchPositions(
  list: ImageList,
  order: Int32Array,
  batchSize: number,
  dropLast: boolean,
): Generator<{ positions: Int32Array; labels: Int32Array }> {
  const count = dropLast ? Math.floor(order.length / batchSize) : Math.ceil(order.length / batchSize);
  for (let k = 0; k < count; k++) {
    const positions = order.subarray(k * batchSize, Math.min(order.length, (k + 1) * batchSize));
    yield { positions, labels: Int32Array.from(positions, (p) => list.ds.label(list.indices[p]!)) };
  }
}

export interface StoreOptions {
  /** cap on cached activations, bytes (0: never cache) */
  cacheBytes: number;
  session: SessionOptions;
  /** batch size of prefix inference, and so the images per chunk of a cached list (default 256) */
  batchSize?: number;
  /**
   * Prefix sessions kept for reuse (default 2: a cell reads a sender's and a receiver's
   * activations in lockstep). Each holds its part of the network and ONNX Runtime's
   * arena sized for a batch, so they, not the cut count, bound the store's memory.
   */
  sessions?: number;
}

/**
 * A cached image list: its activations in chunks of the store's batch size, as the prefix
 * network gave them (each run's output array kept as it is, or copied into an evicted
 * entry's chunk: no second copy of the whole list, and no fresh memory where old will do).
 */
interface Entry {
  /** chunk c: the activations of images c * B .. (c + 1) * B - 1, B the store's batch size */
  chunks: Float32Array[];
  /** the arrays the chunks lie at the start of, counted whole in the cap */
  memory: Float32Array[];
  perImage: number;
  lastUse: number;
  /** generators reading it now: never evicted under them (their batches come from it) */
  readers: number;
}

/** Memory for a fill: evicted chunks to copy into (one per new chunk), or none (keep the runs' outputs); `bytes` counted in the cap. */
interface Room {
  bytes: number;
  reuse: Float32Array[];
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
  readonly stats = { cacheFills: 0, reusedFills: 0, streamedBatches: 0, cachedBatches: 0 };

  /** images per prefix run, and per chunk of a cached list */
  private readonly fillBatch: number;

  constructor(private readonly opts: StoreOptions) {
    this.fillBatch = opts.batchSize ?? 256;
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
    // one gather buffer per reader, reused batch after batch: a fresh 10-25 MB array per batch
    // costs page faults on every batch (measured 4-8 s per GB of first-touched memory on the
    // development VM), more than the copy itself
    let gather: Float32Array | undefined;
    try {
      for (const { positions, labels } of batchPositions(list, order, batchSize, dropLast)) {
        if (entry) {
          this.stats.cachedBatches++;
          yield { x: this.read(entry, positions, (gather ??= new Float32Array(batchSize * perImage))), size: positions.length, positions, labels };
        } else {
          this.stats.streamedBatches++;
          yield { x: await this.compute(src, cut, list, positions), size: positions.length, positions, labels };
        }
      }
    } finally {
      if (entry) entry.readers--;
    }
  }

  /**
   * The cached activations of the images at `positions`: a view of the cache itself when they
   * are consecutive (an unshuffled pass), else gathered into `into`. Either way valid until
   * the reader asks for its next batch, and never to be written.
   */
  private read(entry: Entry, positions: Int32Array, into: Float32Array): Float32Array {
    const per = entry.perImage;
    const first = positions[0]!;
    const at = first % this.fillBatch;
    if (at + positions.length <= this.fillBatch && positions.every((p, i) => p === first + i))
      return entry.chunks[(first - at) / this.fillBatch]!.subarray(at * per, (at + positions.length) * per);
    const x = into.subarray(0, positions.length * per);
    positions.forEach((p, i) => {
      const q = p % this.fillBatch;
      x.set(entry.chunks[(p - q) / this.fillBatch]!.subarray(q * per, (q + 1) * per), i * per);
    });
    return x;
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
    const n = list.indices.length;
    const bytes = perImage * n * 4;
    const room = this.makeRoom(
      bytes,
      Array.from({ length: Math.ceil(n / this.fillBatch) }, (_, c) => perImage * Math.min(this.fillBatch, n - c * this.fillBatch)),
    );
    if (!room) return undefined;
    // reserved now: fills that run side by side (a sender's and a receiver's) never overshoot the cap together
    this.used += room.bytes;
    const filling: Filling = { entry: this.fill(src, cut, perImage, list, room), waiters: 0 };
    this.filling.set(key, filling);
    try {
      const entry = await filling.entry;
      entry.readers = 1 + filling.waiters;
      this.cache.set(key, entry);
      return entry;
    } catch (e) {
      this.used -= room.bytes;
      throw e;
    } finally {
      this.filling.delete(key);
    }
  }

  private async fill(src: Source, cut: ActivationCut, perImage: number, list: ImageList, room: Room): Promise<Entry> {
    const chunks: Float32Array[] = [],
      memory: Float32Array[] = [];
    for (let start = 0; start < list.indices.length; start += this.fillBatch) {
      const positions = Int32Array.from({ length: Math.min(this.fillBatch, list.indices.length - start) }, (_, i) => start + i);
      const out = await this.compute(src, cut, list, positions);
      const reuse = room.reuse[chunks.length];
      if (reuse) reuse.set(out);
      chunks.push(reuse ? reuse.subarray(0, out.length) : out);
      memory.push(reuse ?? out);
    }
    this.stats.cacheFills++;
    if (room.reuse.length) this.stats.reusedFills++;
    info(
      `cached ${src.id} ${cut.tensor} on ${list.indices.length} ${list.name} images (${(room.bytes / 2 ** 20).toFixed(0)} MiB; ${(this.used / 2 ** 20).toFixed(0)} of ${(this.opts.cacheBytes / 2 ** 20).toFixed(0)} MiB in use)`,
    );
    return { chunks, memory, perImage, lastUse: ++this.clock, readers: 0 };
  }

  /**
   * Room for `bytes` more cached activations under the cap, in chunks of `sizes` floats:
   * least recently used entries no one reads are evicted until they fit. When the evicted
   * chunks can hold the new ones they are reused (a copy: first-touched
   * memory costs page faults, 4-8 s per GB on the development VM, more than computing most
   * cuts); else the prefix runs' own output arrays become the chunks. `bytes` of the result
   * is what the caller counts in `used`; undefined (cache nothing, stream) when the list
   * cannot fit: too big, or what is left is being read.
   */
  private makeRoom(bytes: number, sizes: readonly number[]): Room | undefined {
    if (bytes > this.opts.cacheBytes) return undefined;
    const evicted: Float32Array[] = [];
    while (this.used + bytes > this.opts.cacheBytes) {
      let oldest: string | undefined;
      let t = Infinity;
      for (const [k, e] of this.cache)
        if (e.readers === 0 && e.lastUse < t) {
          t = e.lastUse;
          oldest = k;
        }
      if (oldest === undefined) return undefined;
      for (const m of this.cache.get(oldest)!.memory) {
        this.used -= m.byteLength;
        evicted.push(m);
      }
      this.cache.delete(oldest);
    }
    // per new chunk (largest first), the smallest evicted chunk that holds it; reused whole, they must fit under the cap
    const fresh: Room = { bytes, reuse: [] };
    evicted.sort((x, y) => x.length - y.length);
    const reuse: Float32Array[] = [];
    for (const c of sizes.map((_, i) => i).sort((i, j) => sizes[j]! - sizes[i]!)) {
      const k = evicted.findIndex((m) => m.length >= sizes[c]!);
      if (k < 0) return fresh;
      reuse[c] = evicted.splice(k, 1)[0]!;
    }
    const reusedBytes = reuse.reduce((sum, m) => sum + m.byteLength, 0);
    return this.used + reusedBytes <= this.opts.cacheBytes ? { bytes: reusedBytes, reuse } : fresh;
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
