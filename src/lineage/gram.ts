/**
 * Pairwise squared Euclidean distances between N weight vectors from one Gram matrix:
 * ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b. The Gram product runs in ONNX Runtime in
 * float64 (a Gemm with transB over column blocks of the [N x P] layer stack, blocks
 * summed in float64), so N^2 P multiply-adds go through the runtime's GEMM kernel instead
 * of a JavaScript loop.
 *
 * Cancellation: the Gram estimate of d2 carries an absolute error of a few units of
 * float64 rounding times (||a||^2 + ||b||^2) (times about sqrt(P) for the sums). When two
 * models are nearly identical, d2 is tiny next to their norms and that error dominates.
 * Criterion: a pair whose estimate is below REPAIR_RATIO x (||a||^2 + ||b||^2) is
 * recomputed directly as sum((a_i - b_i)^2) in float64 (exact differences of float32
 * values). Accepted pairs thus have a relative error of at most about
 * sqrt(P) * 1.1e-16 / REPAIR_RATIO, 3.5e-8 for P = 1e7 (1.8e-8 on the distance).
 *
 * @example
 *   const engine = await GramEngine.create();
 *   const { d2, repaired } = await squaredDistances(engine, stack, n, p);
 *   await engine.release();
 */
import { createModel, emptyGraph } from '../onnx/graph.js';
import { ModelSession, type SessionOptions } from '../runtime/session.js';

export const REPAIR_RATIO = 1e-5;
/** float64 column block fed to the runtime per call */
const BLOCK_BYTES = 32 * 1024 * 1024;

export class GramEngine {
  private constructor(private readonly session: ModelSession) {}

  static async create(opts: SessionOptions = {}): Promise<GramEngine> {
    const g = emptyGraph('gram');
    g.inputs.push({ name: 'x', dtype: 'float64', shape: ['n', 'c'] });
    g.nodes.push({ name: 'gemm', opType: 'Gemm', inputs: ['x', 'x'], outputs: ['g'], attributes: { transB: { kind: 'int', value: 1 } } });
    g.outputs.push({ name: 'g', dtype: 'float64', shape: ['n', 'n'] });
    return new GramEngine(await ModelSession.create(createModel(g), { optimization: 'basic', ...opts }));
  }

  /** The N x N float64 Gram matrix of the rows of `stack` ([n x p], row-major). */
  async gram(stack: Float32Array, n: number, p: number): Promise<Float64Array> {
    const total = new Float64Array(n * n);
    const cols = Math.max(1, Math.min(p, Math.floor(BLOCK_BYTES / (8 * n))));
    const block = new Float64Array(n * cols);
    for (let c0 = 0; c0 < p; c0 += cols) {
      const c = Math.min(cols, p - c0);
      const x = c === cols ? block : new Float64Array(n * c);
      for (let i = 0; i < n; i++) {
        const src = i * p + c0;
        const dst = i * c;
        for (let j = 0; j < c; j++) x[dst + j] = stack[src + j]!;
      }
      const out = await this.session.run({ x: { dtype: 'float64', dims: [n, c], data: x } });
      const g = out['g']!.data as Float64Array;
      for (let k = 0; k < n * n; k++) total[k]! += g[k]!;
    }
    return total;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
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

/** All pairwise squared distances of the stack's rows: Gram product plus direct repair of near pairs. */
export async function squaredDistances(engine: GramEngine, stack: Float32Array, n: number, p: number): Promise<SquaredDistances> {
  const g = await engine.gram(stack, n, p);
  const d2 = new Float64Array(n * n);
  let repaired = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const norms = g[i * n + i]! + g[j * n + j]!;
      let d = norms - 2 * g[i * n + j]!;
      if (d < REPAIR_RATIO * norms) {
        d = directSquaredDistance(stack, i, j, p);
        repaired++;
      }
      d2[i * n + j] = d2[j * n + i] = Math.max(0, d);
    }
  }
  return { d2, repaired };
}

/** Mean absolute difference of every pair of rows (the reference's clustering distance), float64 sums. */
export function meanAbsDistances(stack: Float32Array, n: number, p: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      const a = i * p,
        b = j * p;
      for (let k = 0; k < p; k++) s += Math.abs(stack[a + k]! - stack[b + k]!);
      out[i * n + j] = out[j * n + i] = s / p;
    }
  }
  return out;
}
