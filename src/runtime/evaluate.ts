/**
 * Top-1 and per-class accuracy of a classifier on a dataset, with outputs mapped to
 * dataset classes through the model's label metadata (see labels.ts).
 *
 * @example
 *   const ds = await openDataset('fashion-mnist', 'test');
 *   const r = await evaluate(loadModel('m.onnx'), ds, { classes: [0, 1, 2] });
 *   console.log(r.accuracy, r.perClass['0']);
 */
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { subsetIndices } from '../data/classes.js';
import { checkInputShape, inferBatches } from './infer.js';
import { mapOutputs } from './labels.js';
import { resolveNormalization } from './normalization.js';
import type { SessionOptions } from './session.js';
import { UserError } from '../util/errors.js';
import { argmaxRow } from './argmax.js';
import { pct, table } from '../util/format.js';

export interface EvalOptions extends SessionOptions {
  batchSize?: number;
  /** score only images of these dataset classes (default: every class the model has an output for) */
  classes?: number[];
  /** score only these dataset indices (e.g. a validation split), intersected with the classes */
  indices?: readonly number[];
  mean?: number[];
  std?: number[];
  /** model file name, for messages */
  file?: string;
  /** progress label; omit for none */
  label?: string;
}

export interface EvalResult {
  /** fraction of scored images whose arg-max output maps to their label */
  accuracy: number;
  /** dataset class id -> accuracy on that class's images */
  perClass: Record<string, number>;
  samples: number;
  correct: number;
  /** which files were used */
  data: string;
  /** where the input normalisation came from */
  normalization: string;
}

/**
 * Accuracy of a classifier on a dataset, overall and per class; outputs are mapped to the dataset's classes by the model's labels.
 *
 * @example
 *   const r = await evaluate(openModel('r.onnx'), await openDataset('fashion-mnist', 'test'), { classes: [0, 1, 2], mean: [0.286], std: [0.353] });
 *   console.log(r.accuracy, r.perClass);
 */
export async function evaluate(model: Model, ds: Dataset, opts: EvalOptions = {}): Promise<EvalResult> {
  const map = mapOutputs(model, ds, opts.file);
  const known = [...new Set(Array.from(map.classOf).filter((c) => c >= 0))].sort((a, b) => a - b);
  const classes = opts.classes ?? known;
  for (const c of classes) {
    if (!Number.isInteger(c) || c < 0 || c >= ds.classes)
      throw new UserError(`class ${c} is out of range: ${ds.name} has ${ds.classes} classes (0-${ds.classes - 1})`);
  }
  const indices = subsetIndices(ds, classes, opts.indices);
  if (indices.length === 0) throw new UserError(`no ${ds.split} images of classes ${classes.join(',')} in ${ds.source}`);
  checkInputShape(model, ds, opts.file);
  const norm = resolveNormalization(
    model,
    ds.shape[0],
    { ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}) },
    opts.file ? { file: opts.file } : {},
  );
  const hits = new Map<number, number>();
  const totals = new Map<number, number>();
  const outName = model.graph.outputs[0]!.name;
  for await (const { batch, outputs } of inferBatches(model, ds, {
    ...opts,
    normalization: norm.normalization,
    indices,
    ...(opts.label ? { label: opts.label } : {}),
  })) {
    const logits = outputs[outName]!;
    const k = logits.dims[1]!;
    const data = logits.data as Float32Array;
    for (let b = 0; b < batch.size; b++) {
      const best = argmaxRow(data, b, k);
      const y = batch.labels[b]!;
      totals.set(y, (totals.get(y) ?? 0) + 1);
      if (map.classOf[best] === y) hits.set(y, (hits.get(y) ?? 0) + 1);
    }
  }
  let correct = 0;
  let samples = 0;
  const perClass: Record<string, number> = {};
  for (const c of classes) {
    const t = totals.get(c) ?? 0;
    const h = hits.get(c) ?? 0;
    correct += h;
    samples += t;
    if (t > 0) perClass[String(c)] = h / t;
  }
  return { accuracy: correct / samples, perClass, samples, correct, data: ds.source, normalization: norm.from };
}

/**
 * An evaluation as text: top-1 accuracy, where the normalisation came from, and a table of
 * the per-class accuracies with the dataset's class names.
 *
 * @example
 *   const ds = await openDataset('fashion-mnist', 'test');
 *   console.log(evalText(await evaluate(openModel('r.onnx'), ds), ds, 'r.onnx'));
 */
export function evalText(r: EvalResult, ds: Pick<Dataset, 'split' | 'classNames'>, file: string): string {
  return [
    `${file}: top-1 accuracy ${pct(r.accuracy)} on ${r.samples} ${ds.split} images (${r.correct} correct)`,
    `normalisation: ${r.normalization}`,
    table([['class', 'name', 'accuracy'], ...Object.entries(r.perClass).map(([k, v]) => [k, ds.classNames?.[Number(k)] ?? '', pct(v)])]),
  ].join('\n');
}
