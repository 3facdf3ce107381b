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
}

interface Entry {
  data: Float32Array;
  perImage: number;
  lastUse: number;
}

export class ActivationStore {
  private readonly cache = new Map<string, Entry>();
  private readonly sessions = new Map<string, Promise<ModelSession>>();
  private used = 0;
  private clock = 0;
  /** counters for reports and the benchmark */
  readonly stats = { cacheFills: 0, streamedBatches: 0, cachedBatches: 0 };

  constructor(private readonly opts: StoreOptions) {}

  /**
   * Batches of activations of `src` at a cut (batch-first, `cut.shape` per image) for the
   * images at `order` (positions in `list`), in that order.
   */
  async *batches(src: Source, cut: ActivationCut, list: ImageList, order: Int32Array, batchSize: number, dropLast = false): AsyncGenerator<ActivationBatch> {
    const perImage = numel(cut.shape);
    const entry = await this.cached(src, cut, perImage, list);
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
  }

  /** Frees cached activations and sessions. */
  async release(): Promise<void> {
    this.cache.clear();
    this.used = 0;
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }

  private async cached(src: Source, cut: ActivationCut, perImage: number, list: ImageList): Promise<Entry | undefined> {
    const tensor = cut.tensor;
    const key = `${src.id}|${tensor}|${list.name}`;
    const have = this.cache.get(key);
    if (have) {
      have.lastUse = ++this.clock;
      return have;
    }
    const bytes = perImage * list.indices.length * 4;
    if (bytes > this.opts.cacheBytes) return undefined;
    while (this.used + bytes > this.opts.cacheBytes) this.evict();
    const data = new Float32Array(perImage * list.indices.length);
    const bs = this.opts.batchSize ?? 256;
    for (let start = 0; start < list.indices.length; start += bs) {
      const positions = Int32Array.from({ length: Math.min(bs, list.indices.length - start) }, (_, i) => start + i);
      data.set(await this.compute(src, cut, list, positions), start * perImage);
    }
    const entry = { data, perImage, lastUse: ++this.clock };
    this.cache.set(key, entry);
    this.used += bytes;
    this.stats.cacheFills++;
    info(
      `cached ${src.id} ${tensor} on ${list.indices.length} ${list.name} images (${(bytes / 2 ** 20).toFixed(0)} MiB; ${(this.used / 2 ** 20).toFixed(0)} of ${(this.opts.cacheBytes / 2 ** 20).toFixed(0)} MiB in use)`,
    );
    return entry;
  }

  private evict(): void {
    let oldest: string | undefined;
    let t = Infinity;
    for (const [k, e] of this.cache)
      if (e.lastUse < t) {
        t = e.lastUse;
        oldest = k;
      }
    if (oldest === undefined) return;
    this.used -= this.cache.get(oldest)!.data.length * 4;
    this.cache.delete(oldest);
  }

  /** Runs the prefix of `src` up to the cut on the images at `positions`. */
  private async compute(src: Source, cut: ActivationCut, list: ImageList, positions: Int32Array): Promise<Float32Array> {
    const tensor = cut.tensor;
    const session = await this.session(src, cut);
    const idx = Array.from(positions, (p) => list.indices[p]!);
    const batch = await loadBatch(list.ds, idx, { normalization: src.normalization });
    const [c, h, w] = list.ds.shape;
    const input = imageInput(src.model);
    const out = await session.run({ [input]: { dims: [idx.length, c, h, w], data: batch.x } }, [tensor]);
    return out[tensor]!.data as Float32Array;
  }

  private session(src: Source, cut: ActivationCut): Promise<ModelSession> {
    const key = `${src.id}|${cut.tensor}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = ModelSession.create(prefixModel(src.model, cut), this.opts.session);
      this.sessions.set(key, s);
    }
    return s;
  }
}
