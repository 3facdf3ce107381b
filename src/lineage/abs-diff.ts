/**
 * The reference's clustering distance, mean |W_u - W_v| for every pair of rows of a
 * layer stack, blocked over the columns: a block of all n rows is widened to float64
 * (TypedArray.set: native and exact) and stays in cache while every pair of rows is
 * summed over it, and the blocks' n x n partial sums are added in block order, so the
 * result is the same whichever thread computed which block (layer-pool.ts).
 *
 * The pairs are summed by a WebAssembly SIMD kernel (simd.ts), because neither
 * JavaScript nor ONNX Runtime does this well and no library does it: there is no product
 * form for L1 distances (no GEMM, unlike the Gram of gram.ts), an ONNX graph has to write
 * all n^2 x block differences before reducing them (a design prototype with
 * Cast/Sub/Abs/ReduceSum took 2.7 ns per weight pair, single-threaded), and V8 does not
 * vectorise JavaScript (0.46 ns per weight pair for a register-blocked prototype, 1.1-2.1 ns
 * for the plain per-pair loop), while the kernel's 2-lane float64 SIMD takes 0.26-0.31 ns
 * (CPU time on an AMD EPYC, node 20; `node dist/bench/lineage.js --phases <zoo>` times the
 * plain loop and the kernel). Most calls take a tile of 2 x 4 rows: the 6 rows are loaded
 * once per column pair for 8 pairs.
 *
 * Exactness: the difference of two float32 values is exact in float64, its absolute
 * value too; only the float64 additions round (even and odd columns in two lanes,
 * lanes added per tile and block, blocks in order), within 1e-12 relative of a plain
 * sequential loop on layers of millions of weights (test/lineage/abs-diff.test.ts).
 *
 * @example
 *   const d = meanAbsDistances(stack, n, p);   // d[i * n + j] = mean |row i - row j|
 */
import { addBlock } from './gram.js';
import { MAX_A, MAX_B, SCRATCH_AT, kernels } from './simd.js';

/** widened float64 block per call: all n rows of it stay in L2 */
const BLOCK_BYTES = 1024 * 1024;
/** ...but at least this many columns, so a tile call's work outweighs its call and the block's n x n partial sums */
const MIN_BLOCK_COLUMNS = 256;

/** The column blocks of an [n x p] stack: their width (even, the kernel takes two columns per step; the last may be narrower) and count. */
export function absDiffBlocks(n: number, p: number): { cols: number; count: number } {
  const wanted = Math.max(MIN_BLOCK_COLUMNS, Math.floor(BLOCK_BYTES / (8 * n)));
  const cols = Math.max(2, Math.min(p + (p % 2), wanted - (wanted % 2)));
  return { cols, count: Math.ceil(p / cols) };
}

/**
 * Column block `b`'s share of absDiffSums(): sum over the block's columns of |row i - row j|
 * at [i * n + j] for i < j (a fresh array: callers may keep or transfer it).
 */
export function absDiffBlockSums(stack: Float32Array, n: number, p: number, b: number): Float64Array {
  const sums = new Float64Array(n * n);
  const { cols } = absDiffBlocks(n, p);
  const c0 = b * cols,
    c = Math.min(cols, p - c0);
  // an odd width gets a zero column: |0 - 0| adds nothing
  const width = c + (c % 2);
  const k = kernels();
  const block = k.doubles(n * width),
    out = k.out;
  for (let i = 0; i < n; i++) {
    block.set(stack.subarray(i * p + c0, i * p + c0 + c), i * width);
    if (width > c) block[i * width + c] = 0;
  }
  const bytes = 8 * width;
  const at = (row: number): number => SCRATCH_AT + Math.min(row, n - 1) * bytes;
  /** rows i..i+rows-1 against j..j+cols-1, every pair of them above the diagonal */
  const run = (i: number, rows: number, j: number, cols: number): void => {
    k.tile[rows]![cols]!(at(i), at(i + 1), at(j), at(j + 1), at(j + 2), at(j + 3), bytes, 0);
    for (let r = 0; r < rows; r++) for (let s = 0; s < cols; s++) sums[(i + r) * n + j + s] = out[2 * (r * cols + s)]! + out[2 * (r * cols + s) + 1]!;
  };
  // per pair of rows i0, i0 + 1: the pair itself, then every later row in tiles of MAX_B and single rows for the rest
  for (let i0 = 0; i0 < n; i0 += MAX_A) {
    const rows = Math.min(MAX_A, n - i0);
    if (rows === 2) run(i0, 1, i0 + 1, 1);
    for (let j = i0 + rows; j < n; j += n - j >= MAX_B ? MAX_B : 1) run(i0, rows, j, n - j >= MAX_B ? MAX_B : 1);
  }
  return sums;
}

/** sum over all columns of |row i - row j| at [i * n + j], i < j: the blocks added in block order. */
export function absDiffSums(stack: Float32Array, n: number, p: number): Float64Array {
  const total = new Float64Array(n * n);
  for (let b = 0; b < absDiffBlocks(n, p).count; b++) addBlock(total, absDiffBlockSums(stack, n, p, b));
  return total;
}

/** The symmetric n x n mean |row i - row j| from the upper-triangle sums of sums()/blockSums(). */
export function meanAbsFromSums(sums: Float64Array, n: number, p: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) out[i * n + j] = out[j * n + i] = sums[i * n + j]! / p;
  return out;
}

/** Mean absolute difference of every pair of rows of an [n x p] stack (the reference's clustering distance), float64 sums. */
export function meanAbsDistances(stack: Float32Array, n: number, p: number): Float64Array {
  return meanAbsFromSums(absDiffSums(stack, n, p), n, p);
}
