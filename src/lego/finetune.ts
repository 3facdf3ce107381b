/**
 * Fine-tuning an assembled model on the union of its components' training data. The
 * components may come from different datasets (e.g. CIFAR-10 classes 0-2 and CIFAR-100
 * classes 0-19), so the training data is a view over several datasets whose label is
 * the assembled model's output index; the training loop (src/autodiff/train.ts) runs on
 * that view unchanged.
 *
 * @example
 *   const r = await finetuneAssembled(assembled, [await openDataset('fashion-mnist', 'train')],
 *     { epochs: 2, output: 'ab.tuned.onnx' });
 */
import { rmSync } from 'node:fs';
import type { Model } from '../onnx/types.js';
import type { Dataset, ImageShape } from '../data/types.js';
import { cloneModel } from '../onnx/graph.js';
import { loadModel, saveModel } from '../onnx/proto.js';
import { getInputSpec, getLabels, getProvenance, identityLabels, setLabels, setProvenance, type OutputLabel } from '../onnx/metadata.js';
import { sameDataset } from '../runtime/labels.js';
import type { SessionOptions } from '../runtime/session.js';
import { train, type EpochMetrics } from '../autodiff/train.js';
import type { OptimizerConfig } from '../autodiff/optim.js';
import { MERGE_MATRIX } from './assemble.js';
import { OptionError, UserError } from '../util/errors.js';

export const UNION_DATASET = 'lego-union';

/**
 * The images of several datasets whose classes appear among `labels`, relabelled with
 * the index of their output. Images of classes no output names are left out.
 */
export class UnionDataset implements Dataset {
  readonly name = UNION_DATASET;
  readonly split: string;
  readonly source: string;
  readonly shape: ImageShape;
  readonly classes: number;
  readonly size: number;
  private readonly part: Int32Array;
  private readonly index: Int32Array;
  private readonly labels: Int32Array;

  constructor(
    private readonly parts: readonly Dataset[],
    outputs: readonly OutputLabel[],
  ) {
    if (parts.length === 0) throw new OptionError((o) => `fine-tuning needs training data (${o('data')})`);
    const first = parts[0]!;
    for (const p of parts) {
      if (p.shape.join('x') !== first.shape.join('x'))
        throw new UserError(`fine-tuning data ${p.source} has images of ${p.shape.join('x')}, ${first.source} has ${first.shape.join('x')}`);
    }
    this.split = first.split;
    this.shape = first.shape;
    this.classes = outputs.length;
    const part: number[] = [],
      index: number[] = [],
      labels: number[] = [];
    parts.forEach((ds, k) => {
      const outputOf = new Map<number, number>();
      outputs.forEach((l, j) => {
        if (sameDataset(l.dataset, ds.name) && !outputOf.has(l.class)) outputOf.set(l.class, j);
      });
      for (let i = 0; i < ds.size; i++) {
        const j = outputOf.get(ds.label(i));
        if (j === undefined) continue;
        part.push(k);
        index.push(i);
        labels.push(j);
      }
    });
    const missing = [...new Set(outputs.map((l) => l.dataset))].filter((d) => !parts.some((p) => sameDataset(d, p.name)));
    if (missing.length)
      throw new OptionError(
        (o) =>
          `the assembled model has classes of ${missing.join(', ')}, but no ${o('data')} dataset is ${missing.length > 1 ? 'one of them' : 'it'} (given: ${parts.map((p) => p.name).join(', ')})`,
      );
    if (labels.length === 0) throw new UserError(`no training images of the assembled model's classes in ${parts.map((p) => p.source).join(', ')}`);
    this.part = Int32Array.from(part);
    this.index = Int32Array.from(index);
    this.labels = Int32Array.from(labels);
    this.size = labels.length;
    this.source = `union of ${parts.map((p) => p.source).join(' + ')} (${this.size} images of ${outputs.length} classes)`;
  }

  label(i: number): number {
    const l = this.labels[i];
    if (l === undefined) throw new RangeError(`${UNION_DATASET}: index ${i} is outside [0, ${this.size})`);
    return l;
  }

  async read(indices: readonly number[], out: Float32Array): Promise<void> {
    const n = this.shape[0] * this.shape[1] * this.shape[2];
    // one read per underlying dataset, then scatter back into the caller's order
    const byPart = new Map<number, { at: number[]; idx: number[] }>();
    indices.forEach((i, pos) => {
      if (!Number.isInteger(i) || i < 0 || i >= this.size) throw new RangeError(`${UNION_DATASET}: index ${i} is outside [0, ${this.size})`);
      const k = this.part[i]!;
      let e = byPart.get(k);
      if (!e) byPart.set(k, (e = { at: [], idx: [] }));
      e.at.push(pos);
      e.idx.push(this.index[i]!);
    });
    for (const [k, e] of byPart) {
      const tmp = new Float32Array(e.idx.length * n);
      await this.parts[k]!.read(e.idx, tmp);
      e.at.forEach((pos, j) => out.set(tmp.subarray(j * n, (j + 1) * n), pos * n));
    }
  }
}

export interface FinetuneOptions {
  epochs: number;
  /** where the fine-tuned model is written (its checkpoint and log are removed afterwards) */
  output: string;
  batchSize?: number;
  lr?: number;
  optimizer?: OptimizerConfig;
  seed?: number;
  session?: SessionOptions;
}

export interface FinetuneResult {
  model: Model;
  epochs: EpochMetrics[];
  data: string;
}

/**
 * Trains every weight of the assembled model (the off-diagonal zeros included, so the
 * components can learn to tell each other's classes apart) on `data`; the duplicate-
 * averaging matrix, if any, stays fixed. Labels and input normalisation are kept.
 *
 * @example
 *   await finetuneAssembled(assembled.model, [await openDataset('fashion-mnist', 'train')], { epochs: 1, output: 'c0123-ft.onnx' });
 */
export async function finetuneAssembled(model: Model, data: readonly Dataset[], opts: FinetuneOptions): Promise<FinetuneResult> {
  const labels = getLabels(model);
  if (!labels) throw new UserError('fine-tuning needs a model with label metadata (an assembled model)');
  const union = new UnionDataset(data, labels);
  const working = cloneModel(model);
  setLabels(working, identityLabels(UNION_DATASET, labels.length));
  const spec = getInputSpec(model);
  const channels = union.shape[0];
  const r = await train({
    model: working,
    data: union,
    output: opts.output,
    epochs: opts.epochs,
    batchSize: opts.batchSize ?? 128,
    lr: opts.lr ?? 0.01,
    optimizer: opts.optimizer ?? { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 },
    schedule: { kind: 'cosine', warmupSteps: 0 },
    seed: opts.seed ?? 0,
    // a model without normalisation metadata takes [0, 1] pixels: keep it that way
    mean: spec?.mean ?? new Array(channels).fill(0),
    std: spec?.std ?? new Array(channels).fill(1),
    ...(model.graph.initializers.has(MERGE_MATRIX) ? { freeze: MERGE_MATRIX } : {}),
    ...(opts.session ? { session: opts.session } : {}),
  });
  const tuned = loadModel(opts.output);
  setLabels(tuned, labels);
  const before = getProvenance(model);
  setProvenance(tuned, {
    ...(before ?? { operation: 'assembled', parents: [] }),
    finetune: { epochs: opts.epochs, data: union.source, lr: opts.lr ?? 0.01, seed: opts.seed ?? 0 },
  });
  saveModel(tuned, opts.output);
  for (const extra of [`${opts.output}.ckpt`, `${opts.output}.metrics.jsonl`]) rmSync(extra, { force: true });
  return { model: tuned, epochs: r.epochs, data: union.source };
}
