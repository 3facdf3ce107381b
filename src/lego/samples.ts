/**
 * Representative samples (spec section 1): per class, the training images to which the
 * model gives the highest softmax probability of their true label. Streams the split
 * once and keeps a bounded heap per class, so memory is the number of samples kept.
 *
 * @example
 *   const sel = await selectSamples(model, train, { task: [0, 1, 2], samplesPerClass: 50, normalization });
 *   sel.perClass.get(0); // 50 dataset indices, most confident first
 */
import type { Model } from '../onnx/types.js';
import type { Dataset, Normalization } from '../data/types.js';
import { subsetIndices } from '../data/classes.js';
import { inferBatches } from '../runtime/infer.js';
import type { SessionOptions } from '../runtime/session.js';
import { Rng, hashSeed } from '../util/random.js';
import { UserError } from '../util/errors.js';
import type { UnbalancedCounts } from './types.js';

export interface SampleOptions {
  task: readonly number[];
  /** output index of each task class (same order as task) */
  outputs: readonly number[];
  samplesPerClass: number;
  unbalanced?: UnbalancedCounts;
  normalization: Normalization;
  /** how the softmax that ranks images is computed (default 'float32', see SampleRanking) */
  ranking?: SampleRanking;
  batchSize?: number;
  session?: SessionOptions;
  label?: string;
}

/**
 * 'float32': the softmax as PyTorch computes it in float32 (max subtracted, float32 exp
 * and sum, times the reciprocal of the sum). Confident images then round to exactly 1.0
 * and tie; the first image in dataset order wins a tie, as in the official code, which
 * keeps the first it sees. 'float64': the same formula in double precision, which
 * separates most of those ties by their true (tiny) differences.
 */
export type SampleRanking = 'float32' | 'float64';

/** Softmax probability of output `t` of a logit row, as `ranking` computes it. */
export function softmaxProb(z: Float32Array, row: number, k: number, t: number, ranking: SampleRanking = 'float32'): number {
  let max = -Infinity;
  for (let j = 0; j < k; j++) if (z[row + j]! > max) max = z[row + j]!;
  if (ranking === 'float64') {
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(z[row + j]! - max);
    return Math.exp(z[row + t]! - max) / sum;
  }
  const f = Math.fround;
  let sum = 0;
  for (let j = 0; j < k; j++) sum = f(sum + f(Math.exp(f(z[row + j]! - max))));
  return f(f(Math.exp(f(z[row + t]! - max))) * f(1 / sum));
}

export interface Scored {
  index: number;
  /** softmax probability of the true label */
  prob: number;
}

export interface SampleSelection {
  /** class -> samples, most confident first */
  perClass: Map<number, Scored[]>;
  /** class -> how many were asked for */
  wanted: Map<number, number>;
}

/** How many samples each class gets: a fixed count, or a seeded draw in [lo, hi] per class. */
export function sampleCounts(task: readonly number[], samplesPerClass: number, unbalanced?: UnbalancedCounts): Map<number, number> {
  const counts = new Map<number, number>();
  if (unbalanced) {
    const { lo, hi, seed } = unbalanced;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi < lo) {
      throw new UserError(`unbalanced sample counts need integers 1 <= lo <= hi, got lo=${lo}, hi=${hi}`);
    }
    // one stream per class: a class's count does not depend on which other classes are in the task
    for (const c of task) counts.set(c, lo + new Rng(hashSeed(seed, `unbalanced:${c}`)).int(hi - lo + 1));
  } else {
    if (!Number.isInteger(samplesPerClass) || samplesPerClass < 1) throw new UserError(`samples per class must be a positive integer, got ${samplesPerClass}`);
    for (const c of task) counts.set(c, samplesPerClass);
  }
  return counts;
}

/** "a is a better sample than b": higher probability, then lower index (deterministic ties). */
const better = (a: Scored, b: Scored): boolean => a.prob > b.prob || (a.prob === b.prob && a.index < b.index);

/** Keeps the k best items seen; the root is the worst kept. */
export class BoundedHeap {
  private readonly items: Scored[] = [];
  constructor(readonly capacity: number) {}

  get size(): number { return this.items.length; }

  offer(s: Scored): void {
    const h = this.items;
    if (h.length < this.capacity) {
      h.push(s);
      let i = h.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!better(h[p]!, h[i]!)) break;
        [h[p], h[i]] = [h[i]!, h[p]!];
        i = p;
      }
    } else if (this.capacity > 0 && better(s, h[0]!)) {
      h[0] = s;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let worst = i;
        if (l < h.length && better(h[worst]!, h[l]!)) worst = l;
        if (r < h.length && better(h[worst]!, h[r]!)) worst = r;
        if (worst === i) break;
        [h[worst], h[i]] = [h[i]!, h[worst]!];
        i = worst;
      }
    }
  }

  /** best first */
  sorted(): Scored[] {
    return [...this.items].sort((a, b) => (better(a, b) ? -1 : better(b, a) ? 1 : 0));
  }
}

export async function selectSamples(model: Model, ds: Dataset, opts: SampleOptions): Promise<SampleSelection> {
  const wanted = sampleCounts(opts.task, opts.samplesPerClass, opts.unbalanced);
  const heaps = new Map(opts.task.map((c) => [c, new BoundedHeap(wanted.get(c)!)]));
  const outputOf = new Map(opts.task.map((c, i) => [c, opts.outputs[i]!]));
  const indices = subsetIndices(ds, opts.task);
  for (const c of opts.task) {
    if (!indices.some((i) => ds.label(i) === c)) throw new UserError(`class ${c} has no images in ${ds.source} (${ds.split} split); cannot choose representative samples`);
  }
  const outName = model.graph.outputs[0]!.name;
  for await (const { batch, outputs } of inferBatches(model, ds, {
    ...opts.session, normalization: opts.normalization, indices, ...(opts.batchSize ? { batchSize: opts.batchSize } : {}), ...(opts.label ? { label: opts.label } : {}),
  })) {
    const logits = outputs[outName]!;
    const k = logits.dims[1]!;
    const z = logits.data as Float32Array;
    for (let b = 0; b < batch.size; b++) {
      const y = batch.labels[b]!;
      const prob = softmaxProb(z, b * k, k, outputOf.get(y)!, opts.ranking);
      heaps.get(y)!.offer({ index: batch.indices[b]!, prob });
    }
  }
  return { perClass: new Map([...heaps].map(([c, h]) => [c, h.sorted()])), wanted };
}
