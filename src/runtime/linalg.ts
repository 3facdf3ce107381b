/**
 * Dense float64 linear algebra whose O(n^3) parts run in ONNX Runtime.
 *
 * Least-squares stitches solve normal equations of up to 8193 x 8193 (a stride-16
 * convolution over 32 channels). No npm library does a float64 Cholesky at speed:
 * ml-matrix's takes minutes at n = 4096 on a 2-core machine (~0.5 GFLOP/s, and it runs
 * to the end on a singular matrix), while ORT's float64 Gemm reaches ~8 GFLOP/s there.
 * So this is a textbook left-looking blocked Cholesky: each diagonal block is factored in
 * JavaScript (b^3/3 flops); the update of a block column by the columns before it and its
 * panel solve, nearly all of the n^3/3, are Gemms in ONNX Runtime. Left-looking rather
 * than right-looking because it never writes g and never forms a trailing n x n update:
 * besides g and L it holds one PANEL x n slice at a time (memory at n = 8193: 2 x 537 MB
 * plus ~70 MB). Triangular solves are blocked the same way.
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

/** Rows per Gemm where a product is cut into row slices to bound its temporary memory (PANEL x n doubles). */
const PANEL = 1024;

/** A Cholesky factor L (g = L L^T) with the inverses of its diagonal blocks, kept for solves. */
export interface CholeskyFactor {
  readonly n: number;
  /** row-major n x n; the lower triangle holds L, the rest is undefined */
  readonly l: Float64Array;
  /** per diagonal block starting at blocks[i].at: the inverse of that block of L (size x size) */
  readonly blocks: readonly { at: number; size: number; inv: Float64Array }[];
}

/** Which operands of a product are stored transposed (Gemm's transA / transB): no copy is made to transpose them. */
export interface Transposed {
  a?: boolean;
  b?: boolean;
}

export class DenseLinalg {
  /** one Gemm session per transposition, made on first use */
  private readonly gemms = new Map<string, Promise<ModelSession>>();
  /** `options` is undefined when every product stays in JavaScript */
  private constructor(private readonly options: SessionOptions | undefined) {}

  /** ORT sessions are used only when `maxN` (if known) exceeds one block. */
  static async create(options: SessionOptions, maxN = Infinity): Promise<DenseLinalg> {
    return new DenseLinalg(maxN <= BLOCK ? undefined : options);
  }

  async release(): Promise<void> {
    for (const s of this.gemms.values()) await (await s).release();
    this.gemms.clear();
  }

  private gemm(t: Transposed): Promise<ModelSession> {
    const key = `${t.a ? 'T' : 'N'}${t.b ? 'T' : 'N'}`;
    let s = this.gemms.get(key);
    if (!s) {
      const g = emptyGraph(`gemm64_${key}`);
      g.inputs.push({ name: 'a', dtype: 'float64', shape: ['A0', 'A1'] }, { name: 'b', dtype: 'float64', shape: ['B0', 'B1'] });
      g.nodes.push({
        name: 'gemm',
        opType: 'Gemm',
        inputs: ['a', 'b'],
        outputs: ['c'],
        attributes: { transA: { kind: 'int', value: t.a ? 1 : 0 }, transB: { kind: 'int', value: t.b ? 1 : 0 } },
      });
      g.outputs.push({ name: 'c', dtype: 'float64', shape: ['M', 'N'] });
      s = ModelSession.create(createModel(g), { ...this.options, nchwc: false });
      this.gemms.set(key, s);
    }
    return s;
  }

  /**
   * c = a (rows x inner) * b (inner x cols), row-major; `t` says which of a and b are
   * stored transposed (a as inner x rows, b as cols x inner). Subarrays are read in place.
   */
  async matmul(a: Float64Array, rows: number, inner: number, b: Float64Array, cols: number, t: Transposed = {}): Promise<Float64Array> {
    if (!this.options || rows * inner * cols < BLOCK ** 3)
      return matmulJs(t.a ? transpose(a, inner, rows) : a, rows, inner, t.b ? transpose(b, cols, inner) : b, cols);
    const session = await this.gemm(t);
    const out = await session.run({
      a: { dtype: 'float64', dims: t.a ? [inner, rows] : [rows, inner], data: a },
      b: { dtype: 'float64', dims: t.b ? [cols, inner] : [inner, cols], data: b },
    });
    return out['c']!.data as Float64Array;
  }

  /**
   * Adds x x^T to the lower triangle of c (n x n, row-major) for x (n x rows, row-major):
   * half the flops of the full product, in row slices of PANEL so that no n x n
   * temporary is made. The strict upper triangle of c is left as it was.
   */
  async addLowerGram(c: Float64Array, n: number, x: Float64Array, rows: number): Promise<void> {
    for (let i0 = 0; i0 < n; i0 += PANEL) {
      const i1 = Math.min(n, i0 + PANEL);
      const p = await this.matmul(x.subarray(i0 * rows, i1 * rows), i1 - i0, rows, x.subarray(0, i1 * rows), i1, { b: true });
      for (let i = i0; i < i1; i++) {
        const row = i * n,
          pr = (i - i0) * i1;
        for (let j = 0; j <= i; j++) c[row + j]! += p[pr + j]!;
      }
    }
  }

  /**
   * The lower Cholesky factor of the symmetric n x n matrix g (row-major; only its lower
   * triangle is read, g is not modified), with `ridge` added to the diagonal of its first
   * `rows` rows (all by default). Stops at the first non-positive pivot and returns
   * undefined: a singular matrix costs only the rows before its rank runs out.
   */
  async cholesky(g: Float64Array, n: number, shift: { ridge: number; rows?: number } = { ridge: 0 }): Promise<CholeskyFactor | undefined> {
    const l = new Float64Array(n * n);
    const blocks: { at: number; size: number; inv: Float64Array }[] = [];
    const ridged = shift.rows ?? n;
    for (let k0 = 0; k0 < n; k0 += BLOCK) {
      const kb = Math.min(BLOCK, n - k0),
        below = n - k0;
      // this block column of g from the diagonal down, less L[k0:, :k0] L[k0:k0+kb, :k0]^T
      const col = take(g, n, k0, k0, below, kb);
      for (let i = 0; i < kb && k0 + i < ridged; i++) col[i * kb + i]! += shift.ridge;
      if (k0 > 0) {
        const top = take(l, n, k0, 0, kb, k0);
        for (let i0 = 0; i0 < below; i0 += PANEL) {
          const i1 = Math.min(below, i0 + PANEL);
          const upd = await this.matmul(take(l, n, k0 + i0, 0, i1 - i0, k0), i1 - i0, k0, top, kb, { b: true });
          for (let i = 0; i < upd.length; i++) col[i0 * kb + i]! -= upd[i]!;
        }
      }
      const d = col.subarray(0, kb * kb);
      if (!cholInPlace(d, kb)) return undefined;
      put(l, n, k0, k0, d, kb, kb);
      const inv = lowerInverse(d, kb);
      blocks.push({ at: k0, size: kb, inv });
      const rest = below - kb;
      if (rest === 0) break;
      // panel: L21 = A21 L11^-T
      put(l, n, k0 + kb, k0, await this.matmul(col.subarray(kb * kb), rest, kb, inv, kb, { b: true }), rest, kb);
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
        const upd = await this.matmul(take(l, n, at + size, at, rest, size), size, rest, y.subarray((at + size) * m), m, { a: true });
        for (let i = 0; i < size * m; i++) rhs[i]! -= upd[i]!;
      }
      put(y, m, at, 0, await this.matmul(inv, size, size, rhs, m, { a: true }), size, m);
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
