/**
 * Batched inference over a dataset, optionally with taps: intermediate tensors exposed
 * as extra outputs and handed to the caller batch by batch, so that nothing grows with
 * the number of images (contributions, activations statistics, CKA accumulate).
 *
 * @example
 *   for await (const { batch, outputs } of inferBatches(model, ds, { normalization, taps: ['layer1.0.relu2'] })) {
 *     accumulate(outputs['layer1.0.relu2'], batch.labels);
 *   }
 */
import type { Model, Tensor } from '../onnx/types.js';
import type { Batch, Dataset, Normalization } from '../data/types.js';
import { addOutputs } from '../onnx/extract.js';
import { batches } from '../data/batches.js';
import { ModelSession, type SessionOptions } from './session.js';
import { progress } from '../util/progress.js';
import { OptionError, UserError } from '../util/errors.js';

export interface InferOptions extends SessionOptions {
  normalization: Normalization;
  batchSize?: number;
  /** dataset indices to run (default: all) */
  indices?: readonly number[];
  /** intermediate tensors to return with each batch */
  taps?: readonly string[];
  /** label for the progress line; omit for no progress */
  label?: string;
  /** model file name for error messages */
  file?: string;
}

export interface InferResult {
  batch: Batch;
  /** the model's outputs and the taps, by tensor name */
  outputs: Record<string, Tensor>;
}

export const DEFAULT_BATCH = 256;

export function checkInputShape(model: Model, ds: Pick<Dataset, 'shape' | 'source'>, file = 'model'): string {
  const input = model.graph.inputs[0];
  if (!input) throw new UserError(`${file} has no graph input`);
  if (model.graph.inputs.length > 1)
    throw new UserError(
      `${file} has ${model.graph.inputs.length} inputs (${model.graph.inputs.map((i) => i.name).join(', ')}); modelsmith feeds image classifiers with one input`,
    );
  const s = input.shape;
  if (s && s.length === 4) {
    const want = s.slice(1);
    const ok = want.every((d, i) => typeof d !== 'number' || d === ds.shape[i]);
    if (!ok) {
      const [c, h, w] = want.map((d) => (typeof d === 'number' ? String(d) : undefined));
      throw new OptionError(
        (o) =>
          `${file} expects inputs of shape ${want.join('x')}, but the data (${ds.source}) has images of ${ds.shape.join('x')}: ` +
          `adapt them with a view of the data, ${o('view.resize', h && w ? `${h}x${w}` : 'HxW')} and ${o('view.channels', c ?? '1|3')}`,
      );
    }
  } else if (s && s.length !== 4) {
    throw new UserError(`${file}: input ${input.name} has rank ${s.length}; expected an image batch [N, C, H, W]`);
  }
  return input.name;
}

/**
 * Runs the model over the dataset batch by batch; with `taps`, intermediate tensors come back as extra outputs.
 *
 * @example
 *   for await (const { batch, outputs } of inferBatches(model, test, { normalization: { mean: [0.286], std: [0.353] }, taps: ['layer1.0.relu2'] })) {
 *     outputs['layer1.0.relu2'].dims;   // [batch size, 16, 28, 28]
 *   }
 */
export async function* inferBatches(model: Model, ds: Dataset, opts: InferOptions): AsyncGenerator<InferResult> {
  const inputName = checkInputShape(model, ds, opts.file);
  const taps = opts.taps ?? [];
  const runModel = taps.length ? addOutputs(model, [...taps]) : model;
  const session = await ModelSession.create(runModel, opts);
  const batchSize = opts.batchSize ?? DEFAULT_BATCH;
  const n = opts.indices?.length ?? ds.size;
  const bar = opts.label ? progress(opts.label, n) : undefined;
  const [c, h, w] = ds.shape;
  try {
    const iter = batches(ds, { batchSize, normalization: opts.normalization, ...(opts.indices ? { indices: opts.indices } : {}) });
    for await (const batch of iter) {
      const outputs = await session.run({ [inputName]: { dims: [batch.size, c, h, w], data: batch.x.subarray(0, batch.size * c * h * w) } });
      bar?.tick(batch.size);
      yield { batch, outputs };
    }
    bar?.done();
  } finally {
    await session.release();
  }
}

/**
 * The model's first output (the logits) batch by batch: `z` holds `batch.size` rows of `k`
 * values. The loop every per-image scorer (samples, scores, scaling) runs.
 *
 * @example
 *   for await (const { batch, z, k } of logitBatches(model, ds, { normalization, indices })) {
 *     for (let b = 0; b < batch.size; b++) console.log(batch.labels[b], z.subarray(b * k, (b + 1) * k));
 *   }
 */
export async function* logitBatches(
  model: Model,
  ds: Dataset,
  opts: InferOptions,
): AsyncGenerator<{ batch: InferResult['batch']; z: Float32Array; k: number }> {
  const outName = model.graph.outputs[0]!.name;
  for await (const { batch, outputs } of inferBatches(model, ds, opts)) {
    const t = outputs[outName]!;
    yield { batch, z: t.data as Float32Array, k: t.dims[1]! };
  }
}
