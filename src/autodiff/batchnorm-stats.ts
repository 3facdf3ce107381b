/**
 * Re-estimates BatchNorm running statistics on data: the standard repair when a
 * network's weights changed without its statistics following (a pruned LEGO component,
 * whose BatchNorms now see fewer input channels) or never had any (a freshly
 * initialised control network, whose statistics 0/1 make it predict one class).
 *
 * Every BatchNormalization normalises with its batch statistics, as in training, so
 * one pass over the images gives every layer statistics consistent with the layers
 * before it; the running statistics become the average over batches of the batch mean
 * and the unbiased batch variance (PyTorch's `momentum=None` cumulative average).
 * Labels are never read.
 *
 * @example
 *   const train = await openDataset('fashion-mnist', 'train');
 *   const { model: fixed } = await reestimateBatchNorm(component, train, { indices: taskIndices, samples: 2048 });
 */
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { cloneModel } from '../onnx/graph.js';
import { float32 } from '../onnx/tensor.js';
import { batches } from '../data/batches.js';
import { checkInputShape } from '../runtime/infer.js';
import { resolveNormalization } from '../runtime/normalization.js';
import { ModelSession, type SessionOptions } from '../runtime/session.js';
import { Rng, hashSeed } from '../util/random.js';
import { UserError } from '../util/errors.js';
import { progress } from '../util/progress.js';
import { buildStatisticsGraph } from './training-graph.js';

export interface BatchNormEstimateOptions extends SessionOptions {
  /** dataset indices to draw images from (default: the whole dataset) */
  indices?: readonly number[];
  /** images to use (default 2048; fewer if fewer are available), in whole batches */
  samples?: number;
  /** default 256, lowered to the number of images when there are fewer */
  batchSize?: number;
  /** which images are drawn (default 0) */
  seed?: number;
  /** input normalisation, for models without normalisation metadata */
  mean?: number[];
  std?: number[];
  /** model file name, for messages */
  file?: string;
  /** progress label; omit for none */
  label?: string;
}

export interface BatchNormEstimate {
  model: Model;
  /** BatchNormalization layers re-estimated */
  layers: number;
  /** images used */
  samples: number;
}

export async function reestimateBatchNorm(model: Model, ds: Dataset, opts: BatchNormEstimateOptions = {}): Promise<BatchNormEstimate> {
  const file = opts.file ?? 'model';
  checkInputShape(model, ds, file);
  const pool = opts.indices ? Int32Array.from(opts.indices) : Int32Array.from({ length: ds.size }, (_, i) => i);
  if (pool.length < 2) throw new UserError(`re-estimating BatchNorm statistics of ${file} needs at least 2 images, ${ds.source} offers ${pool.length}`);
  const wanted = Math.min(opts.samples ?? 2048, pool.length);
  if (!Number.isInteger(wanted) || wanted < 2) throw new UserError(`BatchNorm re-estimation samples must be an integer >= 2, got ${opts.samples}`);
  const batchSize = Math.min(opts.batchSize ?? 256, wanted);
  const used = Math.floor(wanted / batchSize) * batchSize;
  const order = (new Rng(hashSeed(opts.seed ?? 0, 'batchnorm-stats')).shuffle(pool) as Int32Array).subarray(0, used);
  const sg = buildStatisticsGraph(model, batchSize);
  const result = cloneModel(model);
  if (sg.layers.length === 0) return { model: result, layers: 0, samples: 0 };
  for (const l of sg.layers) {
    for (const name of [l.runningMean, l.runningVariance]) {
      if (!result.graph.initializers.has(name))
        throw new UserError(`${file}: BatchNorm running statistic "${name}" is not a stored initializer; cannot re-estimate it`);
    }
  }
  const sums = sg.layers.map((l) => ({
    mean: new Float64Array(result.graph.initializers.get(l.runningMean)!.data.length),
    variance: new Float64Array(result.graph.initializers.get(l.runningVariance)!.data.length),
  }));
  const norm = resolveNormalization(model, ds.shape[0], { ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}) }).normalization;
  const session = await ModelSession.create(sg.model, opts);
  const bar = opts.label ? progress(opts.label, used) : undefined;
  let count = 0;
  try {
    for await (const batch of batches(ds, { batchSize, normalization: norm, indices: Array.from(order) })) {
      const out = await session.run({ [sg.input]: { dims: [batch.size, ...ds.shape], data: batch.x } });
      sg.layers.forEach((l, k) => {
        accumulate(sums[k]!.mean, out[l.mean]!.data as Float32Array, 1);
        accumulate(sums[k]!.variance, out[l.variance]!.data as Float32Array, l.count / (l.count - 1));
      });
      count++;
      bar?.tick(batch.size);
    }
    bar?.done();
  } finally {
    await session.release();
  }
  sg.layers.forEach((l, k) => {
    const dims = result.graph.initializers.get(l.runningMean)!.dims;
    result.graph.initializers.set(
      l.runningMean,
      float32(
        dims,
        Float32Array.from(sums[k]!.mean, (v) => v / count),
      ),
    );
    result.graph.initializers.set(
      l.runningVariance,
      float32(
        dims,
        Float32Array.from(sums[k]!.variance, (v) => v / count),
      ),
    );
  });
  return { model: result, layers: sg.layers.length, samples: used };
}

function accumulate(into: Float64Array, values: Float32Array, scale: number): void {
  if (values.length !== into.length) throw new Error(`batch statistic has ${values.length} channels, the running statistic ${into.length}`);
  for (let i = 0; i < into.length; i++) into[i]! += values[i]! * scale;
}
