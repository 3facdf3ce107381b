/**
 * Closed-form least-squares stitches ("direct matching", Csiszarik et al. 2021). With X
 * the map's inputs (one row per output pixel: N*H*W x K) and Y the receiver's
 * activations (N*H*W x C_B), X1 = [X, 1], the stitch is A = argmin ||X1 A - Y||^2,
 * weights A[:K]^T and bias A[K]. X is never materialised: an ONNX graph turns each batch
 * into X1^T X1 and X1^T Y in float64, summed here in float64, and the fit error
 * ||X1 A - Y||^2 / ||Y||^2 follows from the same moments (||Y||^2 - 2 tr(A^T X1^T Y) +
 * tr(A^T X1^T X1 A)), so it is exact for every image seen without a second pass.
 */
import { CholeskyDecomposition, Matrix } from 'ml-matrix';
import type { Model } from '../onnx/types.js';
import { cloneModel } from '../onnx/graph.js';
import { int, ints } from '../onnx/graph.js';
import { int64 } from '../onnx/tensor.js';
import { ModelSession, type SessionOptions } from '../runtime/session.js';
import { UserError } from '../util/errors.js';
import { type StitchSpec, fmt } from './plan.js';
import { MAP_BIAS, MAP_WEIGHT, type StitchWeights, buildPatchModel, mapFanIn, rowsOf } from './build.js';

/** Largest K solved in closed form: the K x K float64 system and its Cholesky factor stay under ~300 MB and a minute. */
export const MAX_LSQ_INPUTS = 4096;

/** The sums of one least-squares problem (row-major Float64Arrays). */
export interface LsqMoments {
  /** K */
  k: number;
  /** C_B */
  m: number;
  /** number of rows seen */
  rows: number;
  /** X^T X, K x K */
  xx: Float64Array;
  /** X^T Y, K x m */
  xy: Float64Array;
  /** column sums of X (K) and of Y (m) */
  sx: Float64Array;
  sy: Float64Array;
  /** ||Y||^2 */
  yy: number;
}

export interface LsqSolution {
  weights: StitchWeights;
  /** ridge added to X1^T X1's diagonal because it was singular (0: none needed) */
  ridge: number;
  /** relative fit error on the data the moments came from */
  fitError: number;
  /** the solution as a (K+1) x m matrix, for fitErrorOf */
  a: Matrix;
}

/** The float64 graph: sender activation `x` and receiver activation `y` in, moments out. */
export function buildMomentsModel(s: StitchSpec, weights?: StitchWeights): Model {
  const m = cloneModel(buildPatchModel(s, weights));
  const g = m.graph;
  const cb = s.to[0]!;
  g.inputs.push({ name: 'target', dtype: 'float32', shape: ['N', ...s.to] });
  rowsOf(g, 'target', cb, 'yrows');
  const n = (opType: string, inputs: string[], out: string, attributes = {}): void => { g.nodes.push({ name: out, opType, inputs, outputs: [out], attributes }); };
  n('Cast', ['rows'], 'xd', { to: int(11) });
  n('Cast', ['yrows'], 'yd', { to: int(11) });
  n('Transpose', ['xd'], 'xt', { perm: ints([1, 0]) });
  n('MatMul', ['xt', 'xd'], 'xx');
  n('MatMul', ['xt', 'yd'], 'xy');
  g.initializers.set('axis0', int64([1], [0]));
  n('ReduceSum', ['xd', 'axis0'], 'sx', { keepdims: int(0) });
  n('ReduceSum', ['yd', 'axis0'], 'sy', { keepdims: int(0) });
  n('Mul', ['yd', 'yd'], 'y2');
  n('ReduceSum', ['y2'], 'yy', { keepdims: int(0) });
  const k = mapFanIn(s);
  g.outputs = [
    { name: 'xx', dtype: 'float64', shape: [k, k] }, { name: 'xy', dtype: 'float64', shape: [k, cb] },
    { name: 'sx', dtype: 'float64', shape: [k] }, { name: 'sy', dtype: 'float64', shape: [cb] }, { name: 'yy', dtype: 'float64', shape: [] },
  ];
  return m;
}

/**
 * Streams batches into the moments of one least-squares problem.
 *
 * @example
 *   const acc = await LsqAccumulator.create(spec, { threads: 2 });
 *   for (...) await acc.add(senderBatch, receiverBatch, batchSize);
 *   const sol = solveLsq(spec, acc.moments);
 */
export class LsqAccumulator {
  readonly moments: LsqMoments;
  private constructor(private readonly spec: StitchSpec, private readonly session: ModelSession) {
    const k = mapFanIn(spec), m = spec.to[0]!;
    this.moments = { k, m, rows: 0, xx: new Float64Array(k * k), xy: new Float64Array(k * m), sx: new Float64Array(k), sy: new Float64Array(m), yy: 0 };
  }

  static async create(spec: StitchSpec, session: SessionOptions, weights?: StitchWeights): Promise<LsqAccumulator> {
    const k = mapFanIn(spec);
    if (k > MAX_LSQ_INPUTS) {
      throw new UserError(`a least-squares ${spec.kind} stitch ${fmt(spec.from)} -> ${fmt(spec.to)} has ${k} inputs per output, a ${k}x${k} system (limit ${MAX_LSQ_INPUTS}); use --flat pool, or a sender cut closer in size to the receiver`);
    }
    return new LsqAccumulator(spec, await ModelSession.create(buildMomentsModel(spec, weights), session));
  }

  async add(x: Float32Array, y: Float32Array, size: number): Promise<void> {
    const s = this.spec;
    const out = await this.session.run({ x: { dims: [size, ...s.from], data: x }, target: { dims: [size, ...s.to], data: y } });
    const m = this.moments;
    addInto(m.xx, out['xx']!.data as Float64Array);
    addInto(m.xy, out['xy']!.data as Float64Array);
    addInto(m.sx, out['sx']!.data as Float64Array);
    addInto(m.sy, out['sy']!.data as Float64Array);
    m.yy += (out['yy']!.data as Float64Array)[0]!;
    m.rows += size * (s.to.length === 3 ? s.to[1]! * s.to[2]! : 1);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function addInto(a: Float64Array, b: Float64Array): void {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}

/** [[X^T X, sx], [sx^T, rows]] and [[X^T Y], [sy^T]]. */
function augmented(mo: LsqMoments): { g: Matrix; r: Matrix } {
  const { k, m } = mo;
  const g = new Matrix(k + 1, k + 1);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) g.set(i, j, mo.xx[i * k + j]!);
    g.set(i, k, mo.sx[i]!);
    g.set(k, i, mo.sx[i]!);
  }
  g.set(k, k, mo.rows);
  const r = new Matrix(k + 1, m);
  for (let i = 0; i < k; i++) for (let j = 0; j < m; j++) r.set(i, j, mo.xy[i * m + j]!);
  for (let j = 0; j < m; j++) r.set(k, j, mo.sy[j]!);
  return { g, r };
}

/**
 * Solves the normal equations by Cholesky. Dead ReLU channels make X1^T X1 singular;
 * then a ridge of 1e-12 x its largest diagonal entry (x100 until it factors) is added
 * and reported: it sets the weights of channels that are always zero to zero and
 * changes nothing else measurably.
 */
export function solveLsq(s: StitchSpec, mo: LsqMoments): LsqSolution {
  if (mo.rows === 0) throw new UserError('least-squares stitch: no data was seen');
  const { g, r } = augmented(mo);
  let maxDiag = 0;
  for (let i = 0; i <= mo.k; i++) maxDiag = Math.max(maxDiag, g.get(i, i));
  let ridge = 0;
  let a: Matrix | undefined;
  for (let attempt = 0; attempt < 8 && !a; attempt++) {
    const gg = ridge ? g.clone() : g;
    if (ridge) for (let i = 0; i < mo.k; i++) gg.set(i, i, gg.get(i, i) + ridge);
    const chol = new CholeskyDecomposition(gg);
    if (chol.isPositiveDefinite()) {
      const sol = chol.solve(r);
      if (sol.to1DArray().every(Number.isFinite)) a = sol;
    }
    if (!a) ridge = ridge ? ridge * 100 : 1e-12 * maxDiag;
  }
  if (!a) throw new UserError(`least-squares stitch ${fmt(s.from)} -> ${fmt(s.to)}: the normal equations stay singular even with a ridge of ${ridge.toExponential(1)}`);
  const weights: StitchWeights = new Map();
  const w = new Float32Array(mo.m * mo.k);
  for (let o = 0; o < mo.m; o++) for (let i = 0; i < mo.k; i++) w[o * mo.k + i] = a.get(i, o);
  weights.set(MAP_WEIGHT, w);
  weights.set(MAP_BIAS, Float32Array.from({ length: mo.m }, (_, o) => a!.get(mo.k, o)));
  return { weights, ridge, fitError: fitErrorOf(a, mo), a };
}

/** ||X1 A - Y||^2 / ||Y||^2 from the moments of any data set (training or test). */
export function fitErrorOf(a: Matrix, mo: LsqMoments): number {
  if (mo.yy === 0) return 0;
  const { g, r } = augmented(mo);
  const ga = g.mmul(a);
  let quad = 0, cross = 0;
  for (let i = 0; i <= mo.k; i++) {
    for (let j = 0; j < mo.m; j++) {
      quad += a.get(i, j) * ga.get(i, j);
      cross += a.get(i, j) * r.get(i, j);
    }
  }
  return Math.max(0, (mo.yy - 2 * cross + quad) / mo.yy);
}
