/**
 * Pairwise squared Euclidean distances between N weight vectors from one Gram matrix,
 * taken of the differences to a reference row: with X_i = W_i - W_0 (the first model's
 * weights), ||W_i - W_j||^2 = ||X_i - X_j||^2 = G_ii + G_jj - 2 G_ij, G = X X^T. The
 * product runs in ONNX Runtime in float64 over column blocks of the [N x P] float32 layer
 * stack: each block's differences to the reference row are taken in float64 by a SIMD
 * kernel (simd.ts; exact: the difference of two float32 values fits a float64; median
 * 0.23 instead of 0.26-0.28 CPU s per benchmark layer with widening by TypedArray.set and
 * Slice/Sub in the graph), and Gemms with transB over the two halves of the rows give the
 * block's Gram (the symmetric half and the diagonal blocks only); blocks are summed in
 * float64, in block order. So the N^2 P multiply-adds go through the runtime's GEMM kernel, and the
 * products see differences, not raw weights: fine-tunes of one base differ from it by
 * little, so their norms ||X_i||^2 are of the order of their distances and the
 * subtraction G_ii + G_jj - 2 G_ij loses nothing.
 *
 * Why float64 products: a float32 product is rounded to 24 bits (6e-8 relative) and a
 * float32 GEMM also accumulates in float32, so a float32 Gram carries ~1e-7 of the norms
 * in every entry: no pair could meet 1e-9. Products of float32 inputs are exact in
 * float64; only the float64 sums round.
 *
 * Cancellation: the estimate of d2 carries an absolute error of about sqrt(P) units of
 * float64 rounding times (||X_i||^2 + ||X_j||^2) (the sums' rounding errors add up like
 * a random walk). Pairs much closer to each other than to the reference (siblings far
 * from model 0) still cancel: a pair whose estimate is below repairRatio(P) x
 * (||X_i||^2 + ||X_j||^2) is recomputed directly as sum((a_k - b_k)^2) in float64 (exact
 * differences of float32 values). repairRatio is chosen so accepted pairs have a relative
 * error of about TARGET_RELATIVE_ERROR on d2 (half that on the distance).
 *
 * @example
 *   const engine = await GramEngine.create();
 *   const { d2, repaired } = await squaredDistances(engine, stack, n, p);
 *   await engine.release();
 */
import { createModel, emptyGraph } from '../onnx/graph.js';
import { ModelSession, type SessionOptions } from '../runtime/session.js';
import { Kernels, SCRATCH_AT } from './simd.js';

/** relative error on d2 the Gram estimate may carry before a pair is recomputed directly */
export const TARGET_RELATIVE_ERROR = 1e-9;
/** float64 rounding unit */
const UNIT = 2 ** -53;

/** Below this ratio of d2 to ||X_i||^2 + ||X_j||^2 a pair is recomputed directly (see the file comment). */
export function repairRatio(p: number): number {
  return (Math.sqrt(p) * UNIT) / TARGET_RELATIVE_ERROR;
}

/** float64 column block fed to the runtime per call (4 MiB: the block and its differences stay in cache) */
const BLOCK_BYTES = 4 * 1024 * 1024;
/**
 * ...but at least this many columns: every block yields a whole n x n partial Gram to add
 * (and, from a worker, to pass back), which must stay small next to the block's products.
 */
const MIN_BLOCK_COLUMNS = 2048;

/** The column blocks of an [n x p] stack: their width and count (as even as they come: the last is at most count - 1 columns narrower). */
export function gramBlocks(n: number, p: number): { cols: number; count: number } {
  const wanted = Math.max(1, Math.min(p, Math.max(MIN_BLOCK_COLUMNS, Math.floor(BLOCK_BYTES / (8 * n)))));
  const count = Math.ceil(p / wanted);
  return { cols: Math.ceil(p / count), count };
}

export class GramEngine {
  /** its own kernels: the differences are the session's input until the run, so no other caller on this thread may reuse that memory meanwhile */
  private readonly simd = new Kernels();

  private constructor(private readonly session: ModelSession) {}

  /**
   * The graph takes the differences in two halves of the rows, a (the first ceil(n/2),
   * reference row first) and b: G is symmetric, so a a^T, a b^T and b b^T are all of it
   * (3/4 of the products of one n x n Gemm; b a^T is the transpose of a b^T).
   */
  static async create(opts: SessionOptions = {}): Promise<GramEngine> {
    const g = emptyGraph('gram');
    g.inputs.push({ name: 'a', dtype: 'float64', shape: ['h', 'c'] }, { name: 'b', dtype: 'float64', shape: ['k', 'c'] });
    const transB = { transB: { kind: 'int', value: 1 } } as const;
    g.nodes.push(
      { name: 'gram_aa', opType: 'Gemm', inputs: ['a', 'a'], outputs: ['aa'], attributes: transB },
      { name: 'gram_ab', opType: 'Gemm', inputs: ['a', 'b'], outputs: ['ab'], attributes: transB },
      { name: 'gram_bb', opType: 'Gemm', inputs: ['b', 'b'], outputs: ['bb'], attributes: transB },
    );
    g.outputs.push(
      { name: 'aa', dtype: 'float64', shape: ['h', 'h'] },
      { name: 'ab', dtype: 'float64', shape: ['h', 'k'] },
      { name: 'bb', dtype: 'float64', shape: ['k', 'k'] },
    );
    return new GramEngine(await ModelSession.create(createModel(g), { optimization: 'basic', ...opts }));
  }

  /**
   * The N x N float64 Gram matrix of the rows of `stack` ([n x p], row-major) minus its
   * first row: G_ij = (W_i - W_0) . (W_j - W_0).
   */
  async gram(stack: Float32Array, n: number, p: number): Promise<Float64Array> {
    const total = new Float64Array(n * n);
    for (let b = 0; b < gramBlocks(n, p).count; b++) addBlock(total, await this.blockGram(stack, n, p, b));
    return total;
  }

  /** Column block `b`'s share of gram() (a fresh array: callers may keep or transfer it); the parts add up, in block order, to the whole. */
  async blockGram(stack: Float32Array, n: number, p: number, b: number): Promise<Float64Array> {
    const out = new Float64Array(n * n);
    if (n < 2) return out; // a lone row is its own reference
    const { cols } = gramBlocks(n, p);
    const c0 = b * cols,
      c = Math.min(cols, p - c0);
    const h = Math.ceil(n / 2),
      k = n - h;
    const x = differences(this.simd, stack, n, p, c0, c);
    const r = await this.session.run({
      a: { dtype: 'float64', dims: [h, c], data: x.subarray(0, h * c) },
      b: { dtype: 'float64', dims: [k, c], data: x.subarray(h * c) },
    });
    const aa = r['aa']!.data as Float64Array,
      ab = r['ab']!.data as Float64Array,
      bb = r['bb']!.data as Float64Array;
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < h; j++) out[i * n + j] = aa[i * h + j]!;
      for (let j = 0; j < k; j++) out[i * n + h + j] = out[(h + j) * n + i] = ab[i * k + j]!;
    }
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) out[(h + i) * n + h + j] = bb[i * k + j]!;
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * Columns c0 .. c0 + c of every row minus the first row's, widened to float64 ([n x c] in
 * the kernels' memory, valid until their next use): each row is staged next to the
 * reference row and subtracted by simd.ts minus (exact), an odd last column here.
 */
function differences(simd: Kernels, stack: Float32Array, n: number, p: number, c0: number, c: number): Float64Array {
  const even = c - (c % 2);
  const REF = SCRATCH_AT,
    SRC = REF + 16 * Math.ceil((4 * c) / 16),
    DST = SRC + 16 * Math.ceil((4 * c) / 16);
  const buffer = simd.reserve(DST - SCRATCH_AT + 8 * n * c);
  const ref = new Float32Array(buffer, REF, c),
    src = new Float32Array(buffer, SRC, c),
    dst = new Float64Array(buffer, DST, n * c);
  ref.set(stack.subarray(c0, c0 + c));
  for (let i = 0; i < n; i++) {
    src.set(stack.subarray(i * p + c0, i * p + c0 + c));
    if (even > 0) simd.minus(SRC, REF, DST + 8 * i * c, 4 * even);
    if (even < c) dst[i * c + even] = src[even]! - ref[even]!;
  }
  return dst;
}

/** total += part; blocks are added in block order wherever they were computed, so the sum does not depend on the thread count. */
export function addBlock(total: Float64Array, part: ArrayLike<number>): void {
  for (let k = 0; k < total.length; k++) total[k]! += part[k]!;
}

/** sum((a_i - b_i)^2) over rows i and j of the stack, in float64. */
export function directSquaredDistance(stack: Float32Array, i: number, j: number, p: number): number {
  let s0 = 0,
    s1 = 0;
  const a = i * p,
    b = j * p;
  let k = 0;
  for (; k + 1 < p; k += 2) {
    const d0 = stack[a + k]! - stack[b + k]!;
    const d1 = stack[a + k + 1]! - stack[b + k + 1]!;
    s0 += d0 * d0;
    s1 += d1 * d1;
  }
  if (k < p) {
    const d = stack[a + k]! - stack[b + k]!;
    s0 += d * d;
  }
  return s0 + s1;
}

export interface SquaredDistances {
  /** n x n, symmetric, zero diagonal */
  d2: Float64Array;
  /** pairs recomputed directly because of cancellation */
  repaired: number;
}

/** Pairs (i < j) of rows, e.g. those to recompute directly. */
export type RowPairs = readonly (readonly [number, number])[];

/** Exact squared distances of the given pairs, in their order (from the stack, or re-read in panels: measure.ts). */
export type ExactDistances = (pairs: RowPairs) => Float64Array;

/** Exact squared distances of pairs of the stack's rows. */
export function stackDistances(stack: Float32Array, p: number): ExactDistances {
  return (pairs) => Float64Array.from(pairs, ([i, j]) => directSquaredDistance(stack, i, j, p));
}

/** All pairwise squared distances of the stack's rows: Gram product plus direct repair of near pairs. */
export async function squaredDistances(engine: GramEngine, stack: Float32Array, n: number, p: number): Promise<SquaredDistances> {
  return distancesFromGram(await engine.gram(stack, n, p), n, p, stackDistances(stack, p));
}

/** The squared distances from the layer's Gram (GramEngine.gram), pairs under the repair criterion recomputed by `exact`. */
export function distancesFromGram(g: Float64Array, n: number, p: number, exact: ExactDistances): SquaredDistances {
  const d2 = new Float64Array(n * n);
  const ratio = repairRatio(p);
  const near: [number, number][] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const norms = g[i * n + i]! + g[j * n + j]!;
      const d = norms - 2 * g[i * n + j]!;
      if (d < ratio * norms) near.push([i, j]);
      else d2[i * n + j] = d2[j * n + i] = d;
    }
  }
  if (near.length > 0) {
    const direct = exact(near);
    near.forEach(([i, j], q) => (d2[i * n + j] = d2[j * n + i] = Math.max(0, direct[q]!)));
  }
  return { d2, repaired: near.length };
}
