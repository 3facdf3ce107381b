/**
 * Representative samples (docs/lego-method.md §1): per class, the training images to which the
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
import { logitBatches } from '../runtime/infer.js';
import type { SessionOptions } from '../runtime/session.js';
import { Rng, hashSeed } from '../util/random.js';
import { UserError } from '../util/errors.js';
import type { UnbalancedCounts } from './types.js';
import type { TaskOutputs } from './task.js';

export interface SampleOptions {
  /** the task's classes and the model output of each */
  task: TaskOutputs;
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
 * 'float32': the softmax exactly as PyTorch computes it on the CPU in float32 (its AVX2
 * kernel: the max subtracted, Sleef's expf, the sum reduced across the eight SIMD lanes,
 * times the reciprocal of the sum), bit for bit. Confident images then round to exactly
 * 1.0 and tie; the first image in dataset order wins a tie, as in the official code,
 * which keeps the first it sees. 'float64': the same formula in double precision, which
 * separates most of those ties by their true (tiny) differences.
 */
export const SAMPLE_RANKINGS = ['float32', 'float64'] as const;
export type SampleRanking = (typeof SAMPLE_RANKINGS)[number];

const f32 = Math.fround;
/** float32 fused multiply-add: the float64 product of two float32 values is exact, so only the sum rounds (twice, in rare ties). */
const fma32 = (a: number, b: number, c: number): number => f32(a * b + c);
const LOG2E = f32(Math.LOG2E);
const LN2_HI = f32(0.693145751953125);
const LN2_LO = f32(1.428606765330187045e-6);
const EXP_POLY = [
  0.000198527617612853646278381, 0.00139304355252534151077271, 0.00833336077630519866943359, 0.0416664853692054748535156, 0.166666671633720397949219, 0.5,
].map(f32);

/**
 * Sleef's expf (the u10 variant PyTorch's vectorised float exp calls). Written out here
 * because no JavaScript library reproduces it, and Math.exp rounded to float32 differs
 * from it in the last bit for about one value in twelve, which reorders tied samples.
 */
export function sleefExpf(x: number): number {
  const d = f32(x);
  const t = f32(d * LOG2E);
  let q = Math.round(t);
  if (q - t === 0.5 && q % 2 !== 0) q -= 1; // round half to even, as vrint
  let s = fma32(q, -LN2_HI, d);
  s = fma32(q, -LN2_LO, s);
  let u = EXP_POLY[0]!;
  for (let i = 1; i < EXP_POLY.length; i++) u = fma32(u, s, EXP_POLY[i]!);
  u = f32(1 + fma32(f32(s * s), u, s));
  const half = q >> 1;
  u = f32(f32(u * 2 ** half) * 2 ** (q - half));
  if (d < -104) return 0;
  if (d > 100) return Infinity;
  return u;
}

/** PyTorch's float sum over a row (vec::reduce_all with 8 AVX2 lanes, then the lanes folded as a tree). */
function torchSum(e: Float32Array | number[], n: number): number {
  const lanes = 8;
  if (n < lanes) {
    let s = 0;
    for (let j = 0; j < n; j++) s = f32(s + e[j]!);
    return s;
  }
  const a = new Array<number>(lanes);
  for (let l = 0; l < lanes; l++) a[l] = e[l]!;
  for (let d = lanes; d < n; d += lanes) for (let l = 0; l < lanes && d + l < n; l++) a[l] = f32(a[l]! + e[d + l]!);
  const p = (i: number, j: number): number => f32(a[i]! + a[j]!);
  return f32(f32(p(0, 4) + p(2, 6)) + f32(p(1, 5) + p(3, 7)));
}

/** Softmax probability of output `t` of a logit row, as `ranking` computes it. */
export function softmaxProb(z: Float32Array, row: number, k: number, t: number, ranking: SampleRanking = 'float32'): number {
  let max = -Infinity;
  for (let j = 0; j < k; j++) if (z[row + j]! > max) max = z[row + j]!;
  if (ranking === 'float64') {
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(z[row + j]! - max);
    return Math.exp(z[row + t]! - max) / sum;
  }
  const e = new Array<number>(k);
  for (let j = 0; j < k; j++) e[j] = sleefExpf(f32(z[row + j]! - max));
  return f32(e[t]! * f32(1 / torchSum(e, k)));
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

/** "a is a better sample than b": higher probability, then lower index (the first seen wins a tie, as in the official code). */
const better = (a: Scored, b: Scored): boolean => a.prob > b.prob || (a.prob === b.prob && a.index < b.index);

/** Keeps the k best items seen; the root is the worst kept. */
export class BoundedHeap {
  private readonly items: Scored[] = [];
  constructor(readonly capacity: number) {}

  get size(): number {
    return this.items.length;
  }

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
  const { classes, outputOf } = opts.task;
  const wanted = sampleCounts(classes, opts.samplesPerClass, opts.unbalanced);
  const heaps = new Map(classes.map((c) => [c, new BoundedHeap(wanted.get(c)!)]));
  const indices = subsetIndices(ds, classes);
  for (const c of classes) {
    if (!indices.some((i) => ds.label(i) === c))
      throw new UserError(`class ${c} has no images in ${ds.source} (${ds.split} split); cannot choose representative samples`);
  }
  for await (const { batch, z, k } of logitBatches(model, ds, {
    ...opts.session,
    normalization: opts.normalization,
    indices,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    ...(opts.label ? { label: opts.label } : {}),
  })) {
    for (let b = 0; b < batch.size; b++) {
      const y = batch.labels[b]!;
      const prob = softmaxProb(z, b * k, k, outputOf.get(y)!, opts.ranking);
      heaps.get(y)!.offer({ index: batch.indices[b]!, prob });
    }
  }
  return { perClass: new Map([...heaps].map(([c, h]) => [c, h.sorted()])), wanted };
}
