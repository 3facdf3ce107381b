/**
 * Like-with-like scores for Model LEGO (docs/lego-method.md §7). A component answers among its k
 * task classes, so its accuracy is compared with the base model's k-way accuracy (the
 * base's logits restricted to the task's outputs), not with the base's N-way accuracy on
 * the task's images, which also counts confusions with classes outside the task. Both are
 * computed from one pass. The mismatch measure (the seed's Table 3, docs/lego-method.md §7, defines
 * it) is here too: a component's accuracy on its own task next to what it answers on
 * other tasks' images, where a k-way component can never be right.
 *
 * @example
 *   const s = await scoreTask(base, test, { task: [0, 1, 2], normalization });
 *   console.log(s.nWay.accuracy, s.kWay.accuracy, s.kWay.perClass['0']);
 */
import type { Model } from '../onnx/types.js';
import type { Dataset, Normalization } from '../data/types.js';
import { subsetIndices } from '../data/classes.js';
import { logitBatches, type InferOptions } from '../runtime/infer.js';
import { taskOutputs } from './task.js';
import type { SessionOptions } from '../runtime/session.js';
import { UserError } from '../util/errors.js';

export interface ScoreOptions {
  /** task classes (dataset class ids) */
  task: readonly number[];
  /** restrict to these dataset indices (intersected with the task's classes) */
  indices?: readonly number[];
  normalization: Normalization;
  batchSize?: number;
  session?: SessionOptions;
  file?: string;
  label?: string;
}

export interface ClassAccuracy {
  accuracy: number;
  /** dataset class id -> accuracy on that class's images */
  perClass: Record<string, number>;
}

export interface TaskScore {
  /** arg-max over all of the model's outputs */
  nWay: ClassAccuracy;
  /** arg-max over the task's outputs only (what a component of the task answers) */
  kWay: ClassAccuracy;
  samples: number;
}

/** N-way and k-way accuracy, overall and per class, of `model` on the task's images. */
/** The inference settings of a score: session, normalisation, batch size, progress label. */
function scoreRun(opts: Pick<ScoreOptions, 'session' | 'normalization' | 'batchSize' | 'label'>): InferOptions {
  return {
    ...opts.session,
    normalization: opts.normalization,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    ...(opts.label ? { label: opts.label } : {}),
  };
}

export async function scoreTask(model: Model, ds: Dataset, opts: ScoreOptions): Promise<TaskScore> {
  const { outputs: outs, model: map } = taskOutputs(model, ds, opts.task, opts.file);
  const indices = subsetIndices(ds, [...opts.task], opts.indices);
  if (indices.length === 0) throw new UserError(`no ${ds.split} images of classes ${opts.task.join(',')} in ${ds.source}`);
  const totals = new Map<number, number>();
  const hitsN = new Map<number, number>();
  const hitsK = new Map<number, number>();
  for await (const { batch, z, k } of logitBatches(model, ds, { ...scoreRun(opts), indices })) {
    for (let b = 0; b < batch.size; b++) {
      const y = batch.labels[b]!;
      const row = b * k;
      let best = 0;
      for (let j = 1; j < k; j++) if (z[row + j]! > z[row + best]!) best = j;
      let bestTask = outs[0]!;
      for (const o of outs) if (z[row + o]! > z[row + bestTask]!) bestTask = o;
      totals.set(y, (totals.get(y) ?? 0) + 1);
      if (map.classOf[best] === y) hitsN.set(y, (hitsN.get(y) ?? 0) + 1);
      if (map.classOf[bestTask] === y) hitsK.set(y, (hitsK.get(y) ?? 0) + 1);
    }
  }
  const summary = (hits: Map<number, number>): ClassAccuracy => {
    let correct = 0;
    let n = 0;
    const perClass: Record<string, number> = {};
    for (const c of opts.task) {
      const t = totals.get(c) ?? 0;
      if (!t) continue;
      correct += hits.get(c) ?? 0;
      n += t;
      perClass[String(c)] = (hits.get(c) ?? 0) / t;
    }
    return { accuracy: correct / n, perClass };
  };
  return { nWay: summary(hitsN), kWay: summary(hitsK), samples: indices.length };
}

/** The mismatch measure of one component. */
export interface Mismatch {
  task: number[];
  /** on the task's own images */
  own: { accuracy: number; meanMaxSoftmax: number; samples: number };
  /** on the images of every class outside the task */
  others: {
    samples: number;
    /** share of those images the component assigns to each of its classes (sums to 1) */
    share: Record<string, number>;
    meanMaxSoftmax: number;
  };
}

/**
 * A component (or any model, restricted to the task's outputs) on its own task and on
 * every other class's images of `ds`.
 */
export async function mismatch(model: Model, ds: Dataset, opts: Omit<ScoreOptions, 'indices'>): Promise<Mismatch> {
  const outs = taskOutputs(model, ds, opts.task, opts.file).outputs;
  const inTask = new Set(opts.task);
  const others = Array.from({ length: ds.classes }, (_, c) => c).filter((c) => !inTask.has(c));
  const counts = new Float64Array(outs.length);
  let ownCorrect = 0,
    ownN = 0,
    ownConf = 0,
    otherN = 0,
    otherConf = 0;
  const all = subsetIndices(ds, [...opts.task, ...others]);
  for await (const { batch, z, k } of logitBatches(model, ds, { ...scoreRun(opts), indices: all })) {
    for (let b = 0; b < batch.size; b++) {
      const row = b * k;
      let best = 0;
      let max = -Infinity;
      for (let j = 0; j < outs.length; j++)
        if (z[row + outs[j]!]! > max) {
          max = z[row + outs[j]!]!;
          best = j;
        }
      let sum = 0;
      for (const o of outs) sum += Math.exp(z[row + o]! - max);
      const conf = 1 / sum;
      const y = batch.labels[b]!;
      if (inTask.has(y)) {
        ownN++;
        ownConf += conf;
        if (opts.task[best] === y) ownCorrect++;
      } else {
        otherN++;
        otherConf += conf;
        counts[best]!++;
      }
    }
  }
  return {
    task: [...opts.task],
    own: { accuracy: ownN ? ownCorrect / ownN : 0, meanMaxSoftmax: ownN ? ownConf / ownN : 0, samples: ownN },
    others: {
      samples: otherN,
      share: Object.fromEntries(opts.task.map((c, j) => [String(c), otherN ? counts[j]! / otherN : 0])),
      meanMaxSoftmax: otherN ? otherConf / otherN : 0,
    },
  };
}
