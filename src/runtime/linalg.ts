/**
 * Dense float64 linear algebra whose O(n^3) parts run in ONNX Runtime.
 *
 * Least-squares stitches solve normal equations of up to 4097 x 4097 (a stride-8
 * convolution over 64 channels). No npm library does a float64 Cholesky at speed:
 * ml-matrix's takes minutes at n = 4096 on a 2-core machine (~0.5 GFLOP/s, and it runs
 * to the end on a singular matrix), while ORT's float64 MatMul reaches ~8 GFLOP/s there.
 * So this is a textbook right-looking blocked Cholesky: each diagonal block is factored
 * in JavaScript (b^3/3 flops), and the panel solve and the trailing update — nearly all
 * of the n^3/3 — are MatMuls in ONNX Runtime. Triangular solves are blocked the same way.
 *
 * @example
 *   const la = await DenseLinalg.create({ threads: 2 });
 *   const chol = await la.cholesky(g, n);            // undefined when g is not positive definite
 *   const x = chol && (await la.solve(chol, r, m));  // g x = r for m right-hand sides
 *   await la.release();
 */
import { createModel, emptyGraph } from '../onnx/graph.js';
import { ModelSession, type SessionOptions } from './session.js';

/** Below this size everything stays in JavaScript (ORT's call overhead would dominate). */
const BLOCK = 256;

/** A Cholesky factor L (g = L L^T) with the inverses of its diagonal blocks, kept for solves. */
export interface CholeskyFactor {
  readonly n: number;
  /** row-major n x n; the lower triangle holds L, the rest is undefined */
  readonly l: Float64Array;
  /** per diagonal block starting at blocks[i].at: the inverse of that block of L (size x size) */
  readonly blocks: readonly { at: number; size: number; inv: Float64Array }[];
}

export class DenseLinalg {
  private constructor(private readonly session: ModelSession | undefined) {}

  /** A MatMul session is created only when `maxN` (if known) exceeds one block. */
  static async create(options: SessionOptions, maxN = Infinity): Promise<DenseLinalg> {
    if (maxN <= BLOCK) return new DenseLinalg(undefined);
    const g = emptyGraph('matmul64');
    g.inputs.push({ name: 'a', dtype: 'float64', shape: ['M', 'K'] }, { name: 'b', dtype: 'float64', shape: ['K', 'N'] });
    g.nodes.push({ name: 'mm', opType: 'MatMul', inputs: ['a', 'b'], outputs: ['c'], attributes: {} });
    g.outputs.push({ name: 'c', dtype: 'float64', shape: ['M', 'N'] });
    return new DenseLinalg(await ModelSession.create(createModel(g), { ...options, nchwc: false }));
  }

  async release(): Promise<void> {
    await this.session?.release();
  }

  /** c = a (rows x inner) * b (inner x cols), row-major. */
  async matmul(a: Float64Array, rows: number, inner: number, b: Float64Array, cols: number): Promise<Float64Array> {
    if (!this.session || rows * inner * cols < BLOCK ** 3) return matmulJs(a, rows, inner, b, cols);
    const out = await this.session.run({
      a: { dtype: 'float64', dims: [rows, inner], data: a },
      b: { dtype: 'float64', dims: [inner, cols], data: b },
    });
    return out['c']!.data as Float64Array;
  }

  /**
   * The lower Cholesky factor of the symmetric n x n matrix g (row-major; only its lower
   * triangle is read, g is not modified), with `ridge` added to the diagonal of its first
   * `rows` rows (all by default). Stops at the first non-positive pivot and returns
   * undefined: a singular matrix costs only the rows before its rank runs out.
   */
  async cholesky(g: Float64Array, n: number, shift: { ridge: number; rows?: number } = { ridge: 0 }): Promise<CholeskyFactor | undefined> {
    const l = Float64Array.from(g);
    for (let i = 0; i < (shift.rows ?? n); i++) l[i * n + i]! += shift.ridge;
    const blocks: { at: number; size: number; inv: Float64Array }[] = [];
    for (let k0 = 0; k0 < n; k0 += BLOCK) {
      const kb = Math.min(BLOCK, n - k0);
      const d = take(l, n, k0, k0, kb, kb);
      if (!cholInPlace(d, kb)) return undefined;
      put(l, n, k0, k0, d, kb, kb);
      const inv = lowerInverse(d, kb);
      blocks.push({ at: k0, size: kb, inv });
      const rest = n - k0 - kb;
      if (rest === 0) break;
      // panel: L21 = A21 L11^-T
      const a21 = take(l, n, k0 + kb, k0, rest, kb);
      const l21 = await this.matmul(a21, rest, kb, transpose(inv, kb, kb), kb);
      put(l, n, k0 + kb, k0, l21, rest, kb);
      // trailing update: A22 -= L21 L21^T (lower triangle used later)
      const upd = await this.matmul(l21, rest, kb, transpose(l21, rest, kb), rest);
      for (let i = 0; i < rest; i++) {
        const row = (k0 + kb + i) * n + k0 + kb;
        for (let j = 0; j <= i; j++) l[row + j]! -= upd[i * rest + j]!;
      }
    }
    return { n, l, blocks };
  }

  /** x with L L^T x = r for the m columns of r (n x m, row-major). */
  async solve(f: CholeskyFactor, r: Float64Array, m: number): Promise<Float64Array> {
    const { n, l, blocks } = f;
    const y = Float64Array.from(r);
    // forward: L y = r, block by block; later blocks' right-hand sides lose L21 y_k
    for (const { at, size, inv } of blocks) {
      const yk = await this.matmul(inv, size, size, take(y, m, at, 0, size, m), m);
      put(y, m, at, 0, yk, size, m);
      const rest = n - at - size;
      if (rest > 0) {
        const upd = await this.matmul(take(l, n, at + size, at, rest, size), rest, size, yk, m);
        for (let i = 0; i < rest * m; i++) y[(at + size) * m + i]! -= upd[i]!;
      }
    }
    // backward: L^T x = y, last block first; x_k = L11^-T (y_k - L21^T x_below)
    for (let b = blocks.length - 1; b >= 0; b--) {
      const { at, size, inv } = blocks[b]!;
      const rest = n - at - size;
      const rhs = take(y, m, at, 0, size, m);
      if (rest > 0) {
        const l21t = transpose(take(l, n, at + size, at, rest, size), rest, size);
        const upd = await this.matmul(l21t, size, rest, y.slice((at + size) * m), m);
        for (let i = 0; i < size * m; i++) rhs[i]! -= upd[i]!;
      }
      put(y, m, at, 0, await this.matmul(transpose(inv, size, size), size, size, rhs, m), size, m);
    }
    return y;
  }
}

/** In-place unblocked Cholesky of a small k x k block; false at the first pivot <= 0. */
function cholInPlace(a: Float64Array, k: number): boolean {
  for (let i = 0; i < k; i++) {
    const ri = i * k;
    for (let j = 0; j <= i; j++) {
      const rj = j * k;
      let s = a[ri + j]!;
      for (let p = 0; p < j; p++) s -= a[ri + p]! * a[rj + p]!;
      if (i === j) {
        if (!(s > 0) || !Number.isFinite(s)) return false;
        a[ri + i] = Math.sqrt(s);
      } else a[ri + j] = s / a[rj + j]!;
    }
    for (let j = i + 1; j < k; j++) a[ri + j] = 0;
  }
  return true;
}

/** The inverse of a k x k lower-triangular matrix (also lower triangular). */
function lowerInverse(l: Float64Array, k: number): Float64Array {
  const inv = new Float64Array(k * k);
  for (let c = 0; c < k; c++) {
    inv[c * k + c] = 1 / l[c * k + c]!;
    for (let i = c + 1; i < k; i++) {
      let s = 0;
      for (let p = c; p < i; p++) s -= l[i * k + p]! * inv[p * k + c]!;
      inv[i * k + c] = s / l[i * k + i]!;
    }
  }
  return inv;
}

function matmulJs(a: Float64Array, rows: number, inner: number, b: Float64Array, cols: number): Float64Array {
  const c = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let p = 0; p < inner; p++) {
      const v = a[i * inner + p]!;
      if (v === 0) continue;
      const bo = p * cols,
        co = i * cols;
      for (let j = 0; j < cols; j++) c[co + j]! += v * b[bo + j]!;
    }
  }
  return c;
}

/** The rows x cols block of a (row stride `stride`) at (r0, c0), as a new contiguous array. */
function take(a: Float64Array, stride: number, r0: number, c0: number, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) out.set(a.subarray((r0 + i) * stride + c0, (r0 + i) * stride + c0 + cols), i * cols);
  return out;
}

function put(a: Float64Array, stride: number, r0: number, c0: number, block: Float64Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) a.set(block.subarray(i * cols, (i + 1) * cols), (r0 + i) * stride + c0);
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}
