/**
 * Batching: seeded order, augmentation, normalisation, one batch read ahead.
 *
 * Every Batch gets freshly allocated arrays, so a batch stays valid after the iterator
 * moves on (callers may keep batches, e.g. to cache activations); the cost is one
 * allocation per batch, small next to reading and running it.
 */
import { UserError } from '../util/errors.js';
import { Rng, hashSeed } from '../util/random.js';
import type { Augmentation, Batch, BatchOptions, Dataset, Normalization } from './types.js';
import { augmentBatch, checkAugmentation, normalizeBatch, broadcastNormalization } from './augment.js';

/** Number of batches of `n` items: the last partial one counts unless dropped. */
export function batchCount(n: number, batchSize: number, dropLast = false): number {
  checkBatchSize(batchSize);
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new UserError(`batch size ${batchSize} is not valid: expected a positive integer`);
  }
}

/**
 * The order in which `batches` visits the dataset: opts.indices (default all) as given,
 * or permuted by a generator seeded from opts.seed (default 0) when shuffling. The same
 * seed gives the same order; pass seed + epoch for a new order per epoch.
 */
export function epochOrder(ds: Dataset, opts: Pick<BatchOptions, 'indices' | 'shuffle' | 'seed'>): Int32Array {
  const order = opts.indices ? Int32Array.from(opts.indices) : Int32Array.from({ length: ds.size }, (_, i) => i);
  for (const i of order) {
    if (i < 0 || i >= ds.size) throw new UserError(`index ${i} is outside ${ds.name} ${ds.split} (0-${ds.size - 1})`);
  }
  if (opts.shuffle) new Rng(hashSeed(opts.seed ?? 0, 'shuffle')).shuffle(order);
  return order;
}

export interface LoadOptions {
  normalization?: Normalization;
  augmentation?: Augmentation;
  /** seeds the augmentation draws for this batch */
  seed?: number;
}

/**
 * Reads the given images as one batch: [0, 1] pixels, then augmentation, then normalisation.
 *
 * @example
 *   const batch = await loadBatch(ds, [0, 1, 2], { normalization: { mean: [0.286], std: [0.353] } });
 *   batch.x.length;   // 3 * 1 * 28 * 28, normalised float32 NCHW
 */
export async function loadBatch(ds: Dataset, indices: Int32Array | readonly number[], opts: LoadOptions = {}): Promise<Batch> {
  const size = indices.length;
  const list = Array.from(indices);
  const x = new Float32Array(size * ds.shape[0] * ds.shape[1] * ds.shape[2]);
  await ds.read(list, x);
  const aug = opts.augmentation;
  if (aug && ((aug.cropPadding ?? 0) > 0 || aug.flip)) augmentBatch(x, size, ds.shape, aug, new Rng(opts.seed ?? 0));
  if (opts.normalization) normalizeBatch(x, size, ds.shape, opts.normalization);
  const labels = Int32Array.from(list, (i) => ds.label(i));
  return { x, labels, indices: Int32Array.from(list), size };
}

/**
 * Iterates over the dataset in batches. Reading the next batch starts when the current
 * one is handed out, so reading overlaps with the caller's work and at most two
 * batches are in memory on the iterator's side. Options are checked when called, not
 * on first iteration, so bad flags fail early.
 */
export function batches(ds: Dataset, opts: BatchOptions): AsyncIterable<Batch> {
  checkBatchSize(opts.batchSize);
  const normalization = opts.normalization ? broadcastNormalization(opts.normalization, ds.shape[0]) : undefined;
  if (opts.augmentation) checkAugmentation(opts.augmentation, ds.shape);
  const order = epochOrder(ds, opts);
  const count = batchCount(order.length, opts.batchSize, opts.dropLast);
  const seed = opts.seed ?? 0;
  const load = (k: number): Promise<Batch> => {
    const part = order.subarray(k * opts.batchSize, Math.min(order.length, (k + 1) * opts.batchSize));
    const p = loadBatch(ds, part, {
      ...(normalization ? { normalization } : {}),
      ...(opts.augmentation ? { augmentation: opts.augmentation } : {}),
      // a stream per batch: batch k's augmentation does not depend on read timing
      seed: hashSeed(seed, `augment:${k}`),
    });
    // a prefetch that fails while the caller is busy must not count as unhandled;
    // the error still surfaces when that batch is awaited
    p.catch(() => undefined);
    return p;
  };
  return {
    async *[Symbol.asyncIterator]() {
      let next = count > 0 ? load(0) : undefined;
      for (let k = 0; k < count; k++) {
        const current = await next!;
        next = k + 1 < count ? load(k + 1) : undefined;
        yield current;
      }
    },
  };
}
