/**
 * Closed-form least-squares stitches ("direct matching", Csiszarik et al. 2021). With X
 * the map's inputs (one row per output pixel: N*H*W x K) and Y the receiver's
 * activations (N*H*W x C_B), X1 = [X, 1], the stitch is A = argmin ||X1 A - Y||^2,
 * weights A[:K]^T and bias A[K]. X is never materialised: an ONNX graph turns each batch
 * into X1^T X1 and X1^T Y in float64, summed here in float64, and the fit error
 * ||X1 A - Y||^2 / ||Y||^2 follows from the same moments (||Y||^2 - 2 tr(A^T X1^T Y) +
 * tr(A^T X1^T X1 A)), so it is exact for every image seen without a second pass.
 */
import type { Model } from '../onnx/types.js';
import { cloneModel } from '../onnx/graph.js';
import { int, ints } from '../onnx/graph.js';
import { int64 } from '../onnx/tensor.js';
import { ModelSession, type SessionOptions } from '../runtime/session.js';
import { DenseLinalg } from '../runtime/linalg.js';
import { OptionError, type OptionNamer, UserError } from '../util/errors.js';
import { type StitchKind, type StitchSpec, coreFrom, fmt } from './plan.js';
import { type StitchMap, type StitchWeights, buildPatchModel, mapFanIn, rowsPerImage, stitchMaps, targetRows } from './build.js';
import { numel } from '../onnx/tensor.js';

/** Largest K solved in closed form: the K x K float64 system and its Cholesky factor stay under ~300 MB and seconds. */
export const MAX_LSQ_INPUTS = 4096;

/**
 * Why a stitch's least-squares problem is too large to solve in closed form (more than
 * MAX_LSQ_INPUTS inputs per output), with what helps for its kind; undefined when it fits.
 * Training by gradient always helps (it never forms the K x K system); `how` says which
 * option asked for least squares, to name the one to change (both when unknown).
 */
export function lsqTooLarge(spec: StitchSpec, how?: { mode: string; init: string }): OptionError | undefined {
  const k = mapFanIn(spec);
  if (k <= MAX_LSQ_INPUTS) return undefined;
  return new OptionError((o) => {
    const gradient = how?.mode === 'lsq' ? o('mode', 'task') : how?.init === 'lsq' ? o('init', 'random') : `${o('mode', 'task')} with ${o('init', 'random')}`;
    const fewer = FEWER_INPUTS[spec.kind]?.(o, spec) ?? `a sender cut with fewer channels`;
    return (
      `a least-squares ${spec.kind} stitch ${fmt(spec.from)} -> ${fmt(spec.to)} has ${k} inputs per output, a ${k}x${k} system ` +
      `(limit ${MAX_LSQ_INPUTS}); train it by gradient instead (${gradient}), or use ${fewer}`
    );
  });
}

/** What else gives a stitch kind fewer least-squares inputs (any kind: a sender cut with fewer channels). */
const FEWER_INPUTS: Partial<Record<StitchKind, (o: OptionNamer, s: StitchSpec) => string>> = {
  'flatten-linear': (o) => `${o('flat', 'pool')} (one input per channel)`,
  downsample: (_, s) => `a later sender cut, closer in size to the receiver (here ${coreFrom(s)[0]} channels x a ${s.ratio}x${s.ratio} window)`,
};

/** The sums of one least-squares problem (row-major Float64Arrays): one per learned map of a stitch. */
export interface LsqMoments {
  /** which map of the stitch (the main map, or the class-token map) */
  map: StitchMap['id'];
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
  /** the largest ridge added to an X1^T X1's diagonal because it was singular (0: none needed) */
  ridge: number;
  /** relative fit error on the data the moments came from (all maps: summed residuals over summed ||Y||^2) */
  fitError: number;
  /** each map's solution as a (K+1) x m row-major matrix, for fitErrorOf */
  a: Float64Array[];
}

/** The float64 graph of one map: sender activation `x` and receiver activation `target` in, moments out. */
export function buildMomentsModel(s: StitchSpec, weights?: StitchWeights, map: StitchMap['id'] = 'map'): Model {
  const m = cloneModel(buildPatchModel(s, weights, map));
  const g = m.graph;
  const spec = stitchMaps(s).find((x) => x.id === map)!;
  const cb = spec.shape[0]!;
  g.inputs.push({ name: 'target', dtype: 'float32', shape: ['N', ...s.to] });
  targetRows(g, s, 'target', map, 'yrows');
  const n = (opType: string, inputs: string[], out: string, attributes = {}): void => {
    g.nodes.push({ name: out, opType, inputs, outputs: [out], attributes });
  };
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
  const k = numel(spec.shape.slice(1));
  g.outputs = [
    { name: 'xx', dtype: 'float64', shape: [k, k] },
    { name: 'xy', dtype: 'float64', shape: [k, cb] },
    { name: 'sx', dtype: 'float64', shape: [k] },
    { name: 'sy', dtype: 'float64', shape: [cb] },
    { name: 'yy', dtype: 'float64', shape: [] },
  ];
  return m;
}

/**
 * Streams batches into the moments of a stitch's least-squares problems (one per map).
 *
 * @example
 *   const acc = await LsqAccumulator.create(spec, { threads: 2 });
 *   for (...) await acc.add(senderBatch, receiverBatch, batchSize);
 *   const sol = solveLsq(spec, acc.moments);
 */
export class LsqAccumulator {
  readonly moments: LsqMoments[];
  private constructor(
    private readonly spec: StitchSpec,
    private readonly sessions: ModelSession[],
  ) {
    this.moments = stitchMaps(spec).map((map) => {
      const k = numel(map.shape.slice(1)),
        m = map.shape[0]!;
      return { map: map.id, k, m, rows: 0, xx: new Float64Array(k * k), xy: new Float64Array(k * m), sx: new Float64Array(k), sy: new Float64Array(m), yy: 0 };
    });
  }

  static async create(spec: StitchSpec, session: SessionOptions, weights?: StitchWeights): Promise<LsqAccumulator> {
    const tooLarge = lsqTooLarge(spec);
    if (tooLarge) throw tooLarge;
    const sessions: ModelSession[] = [];
    for (const map of stitchMaps(spec)) sessions.push(await ModelSession.create(buildMomentsModel(spec, weights, map.id), session));
    return new LsqAccumulator(spec, sessions);
  }

  async add(x: Float32Array, y: Float32Array, size: number): Promise<void> {
    const s = this.spec;
    for (let i = 0; i < this.sessions.length; i++) {
      const out = await this.sessions[i]!.run({ x: { dims: [size, ...s.from], data: x }, target: { dims: [size, ...s.to], data: y } });
      const m = this.moments[i]!;
      addInto(m.xx, out['xx']!.data as Float64Array);
      addInto(m.xy, out['xy']!.data as Float64Array);
      addInto(m.sx, out['sx']!.data as Float64Array);
      addInto(m.sy, out['sy']!.data as Float64Array);
      m.yy += (out['yy']!.data as Float64Array)[0]!;
      m.rows += size * rowsPerImage(s, m.map);
    }
  }

  async release(): Promise<void> {
    for (const s of this.sessions) await s.release();
  }
}

function addInto(a: Float64Array, b: Float64Array): void {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}

/** [[X^T X, sx], [sx^T, rows]] and [[X^T Y], [sy^T]], row-major. */
interface Augmented {
  g: Float64Array;
  r: Float64Array;
}

function augmented(mo: LsqMoments): Augmented {
  const { k, m } = mo;
  const n = k + 1;
  const g = new Float64Array(n * n);
  for (let i = 0; i < k; i++) {
    g.set(mo.xx.subarray(i * k, (i + 1) * k), i * n);
    g[i * n + k] = mo.sx[i]!;
    g[k * n + i] = mo.sx[i]!;
  }
  g[k * n + k] = mo.rows;
  const r = new Float64Array(n * m);
  r.set(mo.xy.subarray(0, k * m));
  r.set(mo.sy, k * m);
  return { g, r };
}

/**
 * Solves each map's normal equations by Cholesky (src/runtime/linalg.ts: the heavy parts
 * in ONNX Runtime). Dead ReLU channels, or fewer rows than inputs, make X1^T X1
 * singular; then a ridge of 1e-12 x its largest diagonal entry (x100 until it factors)
 * is added and reported: it sets the weights of channels that are always zero to zero
 * and changes nothing else measurably.
 *
 * @example
 *   const sol = await solveLsq(spec, acc.moments, { threads: 2 });
 */
export async function solveLsq(s: StitchSpec, moments: LsqMoments | readonly LsqMoments[], session: SessionOptions = {}): Promise<LsqSolution> {
  const all = Array.isArray(moments) ? (moments as readonly LsqMoments[]) : [moments as LsqMoments];
  const maps = stitchMaps(s);
  const weights: StitchWeights = new Map();
  const solutions: Float64Array[] = [];
  let ridge = 0;
  const la = await DenseLinalg.create(session, Math.max(...all.map((mo) => mo.k + 1)));
  try {
    let residual = 0,
      total = 0;
    for (const mo of all) {
      const map = maps.find((m) => m.id === mo.map)!;
      if (mo.rows === 0) throw new UserError('least-squares stitch: no data was seen');
      // one augmented system per map serves the solve and the training fit error
      const aug = augmented(mo);
      const one = await solveOne(la, s, mo, aug);
      ridge = Math.max(ridge, one.ridge);
      solutions.push(one.a);
      const w = new Float32Array(mo.m * mo.k);
      for (let o = 0; o < mo.m; o++) for (let i = 0; i < mo.k; i++) w[o * mo.k + i] = one.a[i * mo.m + o]!;
      weights.set(map.weight, w);
      weights.set(map.bias, Float32Array.from(one.a.subarray(mo.k * mo.m, (mo.k + 1) * mo.m)));
      residual += await residualOf(la, aug, mo, one.a);
      total += mo.yy;
    }
    return { weights, ridge, fitError: total === 0 ? 0 : residual / total, a: solutions };
  } finally {
    await la.release();
  }
}

async function solveOne(la: DenseLinalg, s: StitchSpec, mo: LsqMoments, { g, r }: Augmented): Promise<{ a: Float64Array; ridge: number }> {
  const n = mo.k + 1;
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, g[i * n + i]!);
  // fewer rows than unknowns: singular for certain, so the first try already has the ridge
  let ridge = mo.rows < n ? 1e-12 * maxDiag : 0;
  for (let attempt = 0; attempt < 8; attempt++) {
    // the ridge goes on the K weight rows, not on the bias row
    const chol = await la.cholesky(g, n, { ridge, rows: mo.k });
    if (chol) {
      const a = await la.solve(chol, r, mo.m);
      if (a.every(Number.isFinite)) return { a, ridge };
    }
    ridge = ridge ? ridge * 100 : 1e-12 * maxDiag;
  }
  throw new UserError(
    `least-squares stitch ${fmt(s.from)} -> ${fmt(s.to)}: the normal equations stay singular even with a ridge of ${(ridge / 100).toExponential(1)}`,
  );
}

/**
 * ||X1 A - Y||^2 / ||Y||^2 from the moments of any data set (training or test), summed
 * over the maps; `a` holds each map's (K+1) x m solution, row-major.
 */
export async function fitErrorOf(a: readonly Float64Array[], moments: readonly LsqMoments[], session: SessionOptions = {}): Promise<number> {
  const la = await DenseLinalg.create(session, Math.max(...moments.map((mo) => mo.k + 1)));
  try {
    return await fitErrorWith(la, a, moments);
  } finally {
    await la.release();
  }
}

async function fitErrorWith(la: DenseLinalg, as: readonly Float64Array[], ms: readonly LsqMoments[]): Promise<number> {
  let residual = 0,
    total = 0;
  for (let i = 0; i < ms.length; i++) {
    residual += await residualOf(la, augmented(ms[i]!), ms[i]!, as[i]!);
    total += ms[i]!.yy;
  }
  return total === 0 ? 0 : residual / total;
}

/** ||X1 A - Y||^2 = ||Y||^2 - 2 tr(A^T X1^T Y) + tr(A^T X1^T X1 A), from one map's moments. */
async function residualOf(la: DenseLinalg, { g, r }: Augmented, mo: LsqMoments, sol: Float64Array): Promise<number> {
  const ga = await la.matmul(g, mo.k + 1, mo.k + 1, sol, mo.m);
  let quad = 0,
    cross = 0;
  for (let p = 0; p < sol.length; p++) {
    quad += sol[p]! * ga[p]!;
    cross += sol[p]! * r[p]!;
  }
  return Math.max(0, mo.yy - 2 * cross + quad);
}
