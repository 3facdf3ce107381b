/**
 * Gram matrices K = X X^T (n x n, float64) of a model's activations at several cuts, from
 * batched inference with taps. The n x n products run in ONNX Runtime (a one-node Gemm
 * session) because a stem cut has tens of thousands of features per image.
 *
 * Memory: the activations of a block of rows are held (float32) while the rest of the data
 * streams past: a pass that holds rows [a, b) of a cut and streams images a..n-1 yields
 * K[a:b, a:n], and symmetry gives the rest. When every cut's n rows fit the budget
 * (n x features x 4 bytes summed over cuts) one dataset pass computes all Grams; otherwise
 * cuts are split into row blocks and packed into as few passes as fit. The Grams
 * themselves take 8 n^2 bytes per cut (8 MB at n = 1000), and each batch's tapped outputs
 * batch x features x 4 bytes summed over the cuts (ONNX Runtime's buffers, shifted in place).
 *
 * Precision: each cut's features are shifted by the mean of the first batch before the
 * float32 products. Centring removes any constant shift exactly, and the shift keeps the
 * uncentred products small, so the float64 centring does not cancel large numbers.
 *
 * @example
 *   const grams = await computeGrams(model, ds, [{ name: 'stem', tensor: 'stem.relu', shape: [32, 28, 28] }],
 *     { normalization, indices: [0, 1, 2, 3, 4] });
 *   grams[0].gram; // Float64Array(25)
 */
import type { Model } from '../onnx/types.js';
import type { Dataset, Normalization } from '../data/types.js';
import { createModel, emptyGraph } from '../onnx/graph.js';
import { inferBatches, DEFAULT_BATCH } from '../runtime/infer.js';
import { ModelSession, type SessionOptions } from '../runtime/session.js';
import { info } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import { featureViews, type CkaPool } from './views.js';

/** A cut to take a Gram matrix at: its tensor, per-image shape (batch axis excluded) and batch axis (absent: 0). */
export interface GramCut {
  name: string;
  tensor: string;
  shape: readonly number[];
  batchAxis?: number;
  /** a channels-last image's channel axis in the tensor */
  channelAxis?: number;
}

export interface GramOptions extends SessionOptions {
  normalization: Normalization;
  /** dataset indices of the n images */
  indices: readonly number[];
  batchSize?: number;
  /** bytes of activations held at once (default 512 MiB) */
  activationBytes?: number;
  /** progress label; omit for none */
  label?: string;
  /** model file, for messages */
  file?: string;
  /** features per image: flattened (default), token cuts mean-pooled, or token and image cuts pooled (views.ts) */
  pool?: CkaPool;
}

export interface CutGram extends GramCut {
  features: number;
  /** n x n row-major K = X X^T over the n images, in `indices` order */
  gram: Float64Array;
}

export const DEFAULT_ACTIVATION_BYTES = 512 * 2 ** 20;

interface Job {
  cut: number;
  start: number;
  end: number;
}

/** Gram matrices of `model` at every cut over the images `opts.indices`. */
export async function computeGrams(model: Model, ds: Dataset, requested: readonly GramCut[], opts: GramOptions): Promise<CutGram[]> {
  // Each cut is read through its view (batch-first, maybe pooled); two names for one view share one Gram.
  const viewed = featureViews(model, requested, opts.pool ?? 'none');
  const asViews = requested.map((c, i) => ({ name: c.name, tensor: viewed.views[i]!.tensor, shape: viewed.views[i]!.shape }));
  const cuts = asViews.filter((c, i) => asViews.findIndex((d) => d.tensor === c.tensor) === i);
  model = viewed.model;
  const n = opts.indices.length;
  const features = cuts.map((c) => c.shape.reduce((a, b) => a * b, 1));
  const grams = cuts.map(() => new Float64Array(n * n));
  const shifts: (Float32Array | undefined)[] = cuts.map(() => undefined);
  const passes = planPasses(features, n, opts.activationBytes ?? DEFAULT_ACTIVATION_BYTES);
  if (passes.length > 1) info(`${opts.file ?? 'model'}: activations exceed the memory budget; Gram matrices take ${passes.length} dataset passes`);
  const gemm = await ModelSession.create(gemmModel(), sessionOpts(opts));
  try {
    for (let k = 0; k < passes.length; k++) {
      const label = opts.label ? (passes.length > 1 ? `${opts.label} pass ${k + 1}/${passes.length}` : opts.label) : undefined;
      await runPass(model, ds, cuts, features, passes[k]!, grams, shifts, gemm, opts, label);
    }
  } finally {
    await gemm.release();
  }
  return requested.map((c, k) => {
    const i = cuts.findIndex((d) => d.tensor === asViews[k]!.tensor);
    return { ...c, features: features[i]!, gram: grams[i]! };
  });
}

/**
 * Row blocks per cut, packed greedily into passes whose held activations fit `budget`
 * bytes. A cut's first block starts at row 0 and comes first, which the mean shift needs.
 */
export function planPasses(features: readonly number[], n: number, budget: number): Job[][] {
  const rowBytes = features.map((p) => p * 4);
  if (rowBytes.reduce((a, b) => a + b, 0) * n <= budget) return [features.map((_, cut) => ({ cut, start: 0, end: n }))];
  const jobs: Job[] = [];
  features.forEach((_, cut) => {
    const block = Math.max(1, Math.min(n, Math.floor(budget / rowBytes[cut]!)));
    for (let start = 0; start < n; start += block) jobs.push({ cut, start, end: Math.min(n, start + block) });
  });
  const passes: Job[][] = [];
  let current: Job[] = [];
  let bytes = 0;
  for (const j of jobs) {
    const b = (j.end - j.start) * rowBytes[j.cut]!;
    if (current.length && bytes + b > budget) {
      passes.push(current);
      current = [];
      bytes = 0;
    }
    current.push(j);
    bytes += b;
  }
  if (current.length) passes.push(current);
  return passes;
}

async function runPass(
  model: Model,
  ds: Dataset,
  cuts: readonly GramCut[],
  features: readonly number[],
  jobs: Job[],
  grams: Float64Array[],
  shifts: (Float32Array | undefined)[],
  gemm: ModelSession,
  opts: GramOptions,
  label: string | undefined,
): Promise<void> {
  const n = opts.indices.length;
  const from = Math.min(...jobs.map((j) => j.start));
  const stores = jobs.map((j) => new Float32Array((j.end - j.start) * features[j.cut]!));
  const cutsInPass = [...new Set(jobs.map((j) => j.cut))];
  const taps = [...new Set(cutsInPass.map((c) => cuts[c]!.tensor))];
  let pos = from;
  for await (const { batch, outputs } of inferBatches(model, ds, {
    ...sessionOpts(opts),
    normalization: opts.normalization,
    indices: opts.indices.slice(from),
    taps,
    batchSize: opts.batchSize ?? DEFAULT_BATCH,
    ...(label ? { label } : {}),
    ...(opts.file ? { file: opts.file } : {}),
  })) {
    const m = batch.size;
    // Shifted in place: the tapped outputs are this batch's own buffers, and a copy would
    // double the per-batch memory (batch x features x 4 bytes summed over the cuts).
    const rows = new Map<number, Float32Array>();
    for (const c of cutsInPass) {
      const t = outputs[cuts[c]!.tensor]!;
      const p = features[c]!;
      if (t.dims[0] !== m || t.data.length !== m * p) {
        const want = `[${m}, ${cuts[c]!.shape.join(',')}]`;
        throw new UserError(
          `${opts.file ?? 'the model'}: cut "${cuts[c]!.name}" gave a tensor of shape [${t.dims.join(',')}] for ${m} images, expected ${want}`,
        );
      }
      const x = t.data as Float32Array;
      if (!shifts[c]) shifts[c] = columnMean(x, m, p);
      const s = shifts[c]!;
      for (let r = 0; r < m; r++) for (let f = 0; f < p; f++) x[r * p + f]! -= s[f]!;
      rows.set(c, x);
    }
    for (let k = 0; k < jobs.length; k++) {
      const job = jobs[k]!;
      const p = features[job.cut]!;
      const x = rows.get(job.cut)!;
      const store = stores[k]!;
      const lo = Math.max(pos, job.start);
      const hi = Math.min(pos + m, job.end);
      if (hi > lo) store.set(x.subarray((lo - pos) * p, (hi - pos) * p), (lo - job.start) * p);
      const held = Math.min(pos + m, job.end) - job.start;
      if (held <= 0) continue;
      const out = await gemm.run({ a: { dims: [held, p], data: store.subarray(0, held * p) }, b: { dims: [m, p], data: x } });
      const g = out.g!.data as Float32Array;
      const gram = grams[job.cut]!;
      for (let u = 0; u < held; u++) {
        const i = job.start + u;
        for (let v = 0; v < m; v++) {
          const j = pos + v;
          const val = g[u * m + v]!;
          gram[i * n + j] = val;
          gram[j * n + i] = val;
        }
      }
    }
    pos += m;
  }
}

function columnMean(x: Float32Array, m: number, p: number): Float32Array {
  const s = new Float64Array(p);
  for (let r = 0; r < m; r++) for (let f = 0; f < p; f++) s[f]! += x[r * p + f]!;
  return Float32Array.from(s, (v) => v / m);
}

/** g = a b^T for a [S, P], b [M, P]. */
function gemmModel(): Model {
  const g = emptyGraph('gram');
  g.inputs.push({ name: 'a', dtype: 'float32', shape: ['S', 'P'] }, { name: 'b', dtype: 'float32', shape: ['M', 'P'] });
  g.nodes.push({ name: 'gemm', opType: 'Gemm', inputs: ['a', 'b'], outputs: ['g'], attributes: { transB: { kind: 'int', value: 1 } } });
  g.outputs.push({ name: 'g', dtype: 'float32', shape: ['S', 'M'] });
  return createModel(g);
}

function sessionOpts(o: SessionOptions): SessionOptions {
  return {
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.provider ? { provider: o.provider } : {}),
    ...(o.optimization ? { optimization: o.optimization } : {}),
  };
}
