/**
 * Closed-form least-squares stitches ("direct matching", Csiszarik et al. 2021). With X
 * the map's inputs (one row per output pixel: N*H*W x K) and Y the receiver's
 * activations (N*H*W x C_B), X1 = [X, 1], the stitch is A = argmin ||X1 A - Y||^2,
 * weights A[:K]^T and bias A[K]. An ONNX graph turns each batch into its rows X1^T and Y
 * in float64. With at least K+1 rows they are summed at once into the moments X1^T X1
 * and X1^T Y (the primal form, n^2 floats for n = K+1 whatever the row count); with
 * fewer, the rows themselves are kept (fewer than n^2 floats) and the dual form solves
 * them (lsqForm says which and why). Either way the fit error ||X1 A - Y||^2 / ||Y||^2 is
 * exact for every image seen without a second pass: from the moments as ||Y||^2 -
 * 2 tr(A^T X1^T Y) + tr(A^T X1^T X1 A), or from the rows directly.
 */
import type { Model } from '../onnx/types.js';
import { cloneModel } from '../onnx/graph.js';
import { int, ints } from '../onnx/graph.js';
import { int64, numel, tensor } from '../onnx/tensor.js';
import { ModelSession, type SessionOptions } from '../runtime/session.js';
import { DenseLinalg } from '../runtime/linalg.js';
import { OptionError, type OptionNamer, UserError } from '../util/errors.js';
import { type StitchKind, type StitchSpec, coreFrom, fmt } from './plan.js';
import { type StitchMap, type StitchWeights, buildPatchModel, mapFanIn, rowsPerImage, stitchMaps, targetRows } from './build.js';

/**
 * Largest K solved in closed form, bounded by memory (n = K+1; 537 MB per n x n float64
 * matrix at K = 8192). The primal form holds X1^T X1 and its Cholesky factor (2 n^2
 * doubles) plus slices of at most 1024 x n, and while it accumulates, the first n rows
 * until they are summed (n^2). The dual form holds its rows and a centred copy (2 rows x
 * n) and a rows x rows system with its factor: far less for rows << n, at most ~4 n^2
 * just below n rows. At K = 16,384 the primal alone would need 4.3 GB and 8x the flops.
 */
export const MAX_LSQ_INPUTS = 8192;

/**
 * Which form solves a least-squares problem with `rows` rows and K inputs, n = K + 1
 * unknowns per output (with the bias). The one rule, used by the accumulator (keep the
 * rows or sum them into moments) and so by the solver:
 * - primal: the n x n normal equations (X1^T X1 + lambda D) A = X1^T Y by Cholesky, D the
 *   identity on the K weight rows: memory n^2 and n^3/3 flops whatever the row count.
 * - dual, for fewer rows than unknowns (X1^T X1 is then singular and the ridge is needed
 *   anyway): centre X and Y by their column means (this leaves the bias unridged, as D
 *   does) and solve the rows x rows system (Xc Xc^T + lambda I) B = Yc; A[:K] = Xc^T B and
 *   A[K] = mean(Y) - mean(X) A[:K]. By the push-through identity (Xc^T Xc + lambda I)^-1
 *   Xc^T = Xc^T (Xc Xc^T + lambda I)^-1 this is the primal's solution at the same lambda,
 *   for rows^2 K flops instead of n^2 rows (the moments) and n^3/3 (the factor): at K =
 *   8192 and 800 rows, 5e9 instead of 2.4e11. It is also the accurate one there: the
 *   primal system's condition number is ~1e12 (lambda is 1e-12 of its largest diagonal
 *   entry), so rounding moves the primal's weights in directions no training row sees
 *   (held-out fit errors then differ in the third digit), while Xc Xc^T + lambda I is as
 *   well conditioned as the rows themselves.
 */
export function lsqForm(rows: number, k: number): 'primal' | 'dual' {
  return rows < k + 1 ? 'dual' : 'primal';
}

/** Image counts of a least-squares problem: the training images fit it, the test images score it (each list keeps its own rows). */
export interface LsqImages {
  train: number;
  test: number;
}

/**
 * Memory a least-squares problem over MAX_LSQ_INPUTS inputs may take in the dual form: what
 * the primal takes at the limit (X1^T X1, its factor and the first rows: ~3 n^2 doubles at
 * n = 8193, 1.6 GB). With fewer rows than inputs the dual form never forms the K x K
 * system, so such a problem is bounded by its rows, not by K.
 */
const DUAL_MAX_BYTES = 3 * (MAX_LSQ_INPUTS + 1) ** 2 * 8;

/**
 * The dual form's memory for `rows` rows, n = k + 1 unknowns and m outputs, in bytes: the
 * kept rows X1^T and their centred copy (2 rows x n), Y (rows x m), the rows x rows system
 * and its factor, and the solution (n x m); float64.
 */
function dualBytes(rows: number, k: number, m: number): number {
  return 8 * (2 * rows * (k + 1) + rows * m + 2 * rows * rows + (k + 1) * m);
}

/**
 * Why a stitch's least-squares problem is too large to solve in closed form, with what
 * helps for its kind; undefined when it fits. It fits with at most MAX_LSQ_INPUTS inputs
 * per output, or, given the image counts, when both image lists have fewer rows than
 * inputs and their dual form stays within DUAL_MAX_BYTES (few images, many inputs: e.g.
 * DenseNet's [256x16x16] -> [512x2x2], 16,384 inputs, on 200 images of 4 rows each).
 * Training by gradient always helps (it never forms the K x K system); `how` says which
 * option asked for least squares, to name the one to change (both when unknown).
 */
export function lsqTooLarge(spec: StitchSpec, how?: { mode: string; init: string }, images?: LsqImages): OptionError | undefined {
  const k = mapFanIn(spec);
  if (k <= MAX_LSQ_INPUTS) return undefined;
  // by its rows only for a stitch with one map (not one with a class-token map too)
  const maps = stitchMaps(spec);
  const perImage = maps.length === 1 ? rowsPerImage(spec, 'map') : undefined;
  const m = maps[0]!.shape[0]!;
  const dualFits = (n: number): boolean => perImage !== undefined && lsqForm(n * perImage, k) === 'dual' && dualBytes(n * perImage, k, m) <= DUAL_MAX_BYTES;
  if (images && dualFits(images.train) && dualFits(images.test)) return undefined;
  // the most images per list the dual form takes (rows < K + 1, within the memory bound)
  let most = perImage ? Math.floor(k / perImage) : 0;
  while (most > 0 && !dualFits(most)) most = Math.floor(most * 0.9);
  return new OptionError((o) => {
    const gradient = how?.mode === 'lsq' ? o('mode', 'task') : how?.init === 'lsq' ? o('init', 'random') : `${o('mode', 'task')} with ${o('init', 'random')}`;
    const fewer = FEWER_INPUTS[spec.kind]?.(o, spec) ?? `a sender cut with fewer channels`;
    const images_ =
      images && most > 0 ? ` (or at most ${most} training and test images each, solved by their rows: ${images.train} / ${images.test} given)` : '';
    return (
      `a least-squares ${spec.kind} stitch ${fmt(spec.from)} -> ${fmt(spec.to)} has ${k} inputs per output, a ${k}x${k} system ` +
      `(limit ${MAX_LSQ_INPUTS}${images_}); train it by gradient instead (${gradient}), or use ${fewer}`
    );
  });
}

/** What else gives a stitch kind fewer least-squares inputs (any kind: a sender cut with fewer channels). */
const FEWER_INPUTS: Partial<Record<StitchKind, (o: OptionNamer, s: StitchSpec) => string>> = {
  'flatten-linear': (o) => `${o('flat', 'pool')} (one input per channel)`,
  downsample: (_, s) => `a later sender cut, closer in size to the receiver (here ${coreFrom(s)[0]} channels x a ${s.ratio}x${s.ratio} window)`,
};

/** One batch's rows of a least-squares problem, kept while there are fewer than K+1 (the dual form). */
export interface LsqRows {
  rows: number;
  /** X1^T: (K+1) x rows, row-major, its last row all ones */
  x1t: Float64Array;
  /** Y: rows x m, row-major */
  y: Float64Array;
}

/**
 * What one least-squares problem (one learned map of a stitch) needs from the data:
 * the moments (primal form) or the rows themselves (dual form), see lsqForm.
 */
export type LsqMoments = {
  /** which map of the stitch (the main map, or the class-token map) */
  map: StitchMap['id'];
  /** K */
  k: number;
  /** C_B */
  m: number;
  /** number of rows seen */
  rows: number;
  /** ||Y||^2 */
  yy: number;
} & (
  | {
      form: 'primal';
      /** X1^T X1, (K+1) x (K+1) row-major, symmetric */
      g: Float64Array;
      /** X1^T Y, (K+1) x m */
      r: Float64Array;
    }
  | { form: 'dual'; batches: LsqRows[] }
);

export interface LsqSolution {
  weights: StitchWeights;
  /** the largest ridge added to an X1^T X1's diagonal because it was singular (0: none needed) */
  ridge: number;
  /** relative fit error on the data the moments came from (all maps: summed residuals over summed ||Y||^2) */
  fitError: number;
  /** each map's solution as a (K+1) x m row-major matrix, for fitErrorOf */
  a: Float64Array[];
}

/** The float64 graph of one map: sender activation `x` and receiver activation `target` in, the rows X1^T [K+1, R] and Y [R, m] out. */
export function buildRowsModel(s: StitchSpec, weights?: StitchWeights, map: StitchMap['id'] = 'map'): Model {
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
  n('Cast', ['yrows'], 'y', { to: int(11) });
  n('Transpose', ['xd'], 'xt', { perm: ints([1, 0]) });
  // the bias's input: a last row of ones
  g.initializers.set('ones.pads', int64([4], [0, 0, 1, 0]));
  g.initializers.set('ones.value', tensor('float64', [], [1]));
  n('Pad', ['xt', 'ones.pads', 'ones.value'], 'x1t');
  const k = numel(spec.shape.slice(1));
  g.outputs = [
    { name: 'x1t', dtype: 'float64', shape: [k + 1, 'R'] },
    { name: 'y', dtype: 'float64', shape: ['R', cb] },
  ];
  return m;
}

/** A least-squares problem while it is accumulated: its rows until there are K+1, then its moments. */
type Accumulating = { map: StitchMap['id']; k: number; m: number; rows: number; yy: number; batches: LsqRows[]; g?: Float64Array; r?: Float64Array };

/**
 * Streams batches into what each of a stitch's least-squares problems (one per map)
 * needs: the rows while there are fewer than K+1, from then on their moments (lsqForm).
 *
 * @example
 *   const acc = await LsqAccumulator.create(spec, { threads: 2 });
 *   for (...) await acc.add(senderBatch, receiverBatch, batchSize);
 *   const sol = await solveLsq(spec, acc.moments);
 */
export class LsqAccumulator {
  private readonly problems: Accumulating[];
  private constructor(
    private readonly spec: StitchSpec,
    private readonly sessions: ModelSession[],
    private readonly la: DenseLinalg,
  ) {
    this.problems = stitchMaps(spec).map((map) => ({ map: map.id, k: numel(map.shape.slice(1)), m: map.shape[0]!, rows: 0, yy: 0, batches: [] }));
  }

  /** `images`: the most images it will be given (lsqTooLarge); a problem over MAX_LSQ_INPUTS inputs needs them. */
  static async create(spec: StitchSpec, session: SessionOptions, weights?: StitchWeights, images?: LsqImages): Promise<LsqAccumulator> {
    const tooLarge = lsqTooLarge(spec, undefined, images);
    if (tooLarge) throw tooLarge;
    const sessions: ModelSession[] = [];
    for (const map of stitchMaps(spec)) sessions.push(await ModelSession.create(buildRowsModel(spec, weights, map.id), session));
    const la = await DenseLinalg.create(session, Math.max(...stitchMaps(spec).map((m) => numel(m.shape.slice(1)) + 1)));
    return new LsqAccumulator(spec, sessions, la);
  }

  /** Each map's data so far, in the form that lsqForm picks for its row count. */
  get moments(): LsqMoments[] {
    return this.problems.map(({ map, k, m, rows, yy, batches, g, r }) => {
      if (g && r) {
        mirrorLower(g, k + 1);
        return { map, k, m, rows, yy, form: 'primal', g, r };
      }
      return { map, k, m, rows, yy, form: 'dual', batches };
    });
  }

  async add(x: Float32Array, y: Float32Array, size: number): Promise<void> {
    const s = this.spec;
    for (let i = 0; i < this.sessions.length; i++) {
      const out = await this.sessions[i]!.run({ x: { dims: [size, ...s.from], data: x }, target: { dims: [size, ...s.to], data: y } });
      const p = this.problems[i]!;
      const x1t = out['x1t']!;
      const batch: LsqRows = { rows: x1t.dims[1]!, x1t: x1t.data as Float64Array, y: out['y']!.data as Float64Array };
      for (const v of batch.y) p.yy += v * v;
      p.rows += batch.rows;
      p.batches.push(batch);
      if (lsqForm(p.rows, p.k) === 'primal') {
        // over the input limit only the dual form was allowed (create's image counts): more rows than promised
        if (p.k > MAX_LSQ_INPUTS) throw new Error(`internal: a least-squares problem over ${MAX_LSQ_INPUTS} inputs got ${p.rows} rows, more than its inputs`);
        await this.fold(p);
      }
    }
  }

  /** Sums the kept rows into the moments (only the lower triangle of X1^T X1: the solve mirrors it) and lets them go. */
  private async fold(p: Accumulating): Promise<void> {
    const n = p.k + 1;
    p.g ??= new Float64Array(n * n);
    p.r ??= new Float64Array(n * p.m);
    // each batch is let go once summed: the peak is one n x n matrix of rows and g
    for (let b = p.batches.shift(); b; b = p.batches.shift()) {
      await this.la.addLowerGram(p.g, n, b.x1t, b.rows);
      addInto(p.r, await this.la.matmul(b.x1t, n, b.rows, b.y, p.m));
    }
  }

  async release(): Promise<void> {
    for (const s of this.sessions) await s.release();
    await this.la.release();
  }
}

function addInto(a: Float64Array, b: Float64Array): void {
  for (let i = 0; i < a.length; i++) a[i]! += b[i]!;
}

/** Copies the lower triangle of the n x n matrix g onto its upper one (idempotent). */
function mirrorLower(g: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) g[j * n + i] = g[i * n + j]!;
}

/**
 * Solves each map's least-squares problem in the form lsqForm picked for it, by Cholesky
 * (src/runtime/linalg.ts: the heavy parts in ONNX Runtime). Dead ReLU channels, or fewer
 * rows than inputs, make X1^T X1 singular; then a ridge of 1e-12 x its largest diagonal
 * entry (x100 until it factors) is added to the weights' rows and reported: it sets the
 * weights of channels that are always zero to zero and changes nothing else measurably.
 * The dual form, used only with fewer rows than inputs, starts with the same ridge.
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
      const one = await withRidge(s, mo, mo.form === 'primal' ? await primal(la, mo) : await dual(la, mo));
      ridge = Math.max(ridge, one.ridge);
      solutions.push(one.a);
      const w = new Float32Array(mo.m * mo.k);
      for (let o = 0; o < mo.m; o++) for (let i = 0; i < mo.k; i++) w[o * mo.k + i] = one.a[i * mo.m + o]!;
      weights.set(map.weight, w);
      weights.set(map.bias, Float32Array.from(one.a.subarray(mo.k * mo.m, (mo.k + 1) * mo.m)));
      residual += await residualOf(la, mo, one.a);
      total += mo.yy;
    }
    return { weights, ridge, fitError: total === 0 ? 0 : residual / total, a: solutions };
  } finally {
    await la.release();
  }
}

/** One form's solver: the largest diagonal entry of X1^T X1 (the ridge's scale), and the (K+1) x m solution at a ridge, undefined when singular there. */
interface RidgeSolver {
  maxDiag: number;
  solve(ridge: number): Promise<Float64Array | undefined>;
}

/**
 * The ridge schedule, the same for both forms: none first unless there are fewer rows than
 * unknowns (the dual's case: singular for certain), then 1e-12 x maxDiag, x100 per try.
 */
async function withRidge(s: StitchSpec, mo: LsqMoments, solver: RidgeSolver): Promise<{ a: Float64Array; ridge: number }> {
  let ridge = lsqForm(mo.rows, mo.k) === 'dual' ? 1e-12 * solver.maxDiag : 0;
  for (let attempt = 0; attempt < 8; attempt++) {
    const a = await solver.solve(ridge);
    if (a?.every(Number.isFinite)) return { a, ridge };
    ridge = ridge ? ridge * 100 : 1e-12 * solver.maxDiag;
  }
  throw new UserError(
    `least-squares stitch ${fmt(s.from)} -> ${fmt(s.to)}: the normal equations stay singular even with a ridge of ${(ridge / 100).toExponential(1)}`,
  );
}

/** (X1^T X1 + ridge D) A = X1^T Y; the ridge goes on the K weight rows, not on the bias row. */
async function primal(la: DenseLinalg, mo: LsqMoments & { form: 'primal' }): Promise<RidgeSolver> {
  const n = mo.k + 1;
  let maxDiag = 0;
  for (let i = 0; i < n; i++) maxDiag = Math.max(maxDiag, mo.g[i * n + i]!);
  return {
    maxDiag,
    async solve(ridge) {
      const chol = await la.cholesky(mo.g, n, { ridge, rows: mo.k });
      return chol && la.solve(chol, mo.r, mo.m);
    },
  };
}

/** (Xc Xc^T + ridge I) B = Yc, A = [Xc^T B; mean(Y) - mean(X) Xc^T B]: see lsqForm. */
async function dual(la: DenseLinalg, mo: LsqMoments & { form: 'dual' }): Promise<RidgeSolver> {
  const { k, m, rows } = mo;
  // the means first, then X and Y centred by them, row by row (rows x K and rows x m)
  const xm = new Float64Array(k),
    ym = new Float64Array(m),
    sq = new Float64Array(k);
  for (const b of mo.batches) {
    for (let i = 0; i < k; i++) {
      const row = b.x1t.subarray(i * b.rows, (i + 1) * b.rows);
      for (const v of row) {
        xm[i]! += v;
        sq[i]! += v * v;
      }
    }
    for (let j = 0; j < b.rows * m; j++) ym[j % m]! += b.y[j]!;
  }
  for (let i = 0; i < k; i++) xm[i]! /= rows;
  for (let j = 0; j < m; j++) ym[j]! /= rows;
  const xc = new Float64Array(rows * k),
    yc = new Float64Array(rows * m);
  let at = 0;
  for (const b of mo.batches) {
    for (let t = 0; t < b.rows; t++) {
      for (let i = 0; i < k; i++) xc[(at + t) * k + i] = b.x1t[i * b.rows + t]! - xm[i]!;
      for (let j = 0; j < m; j++) yc[(at + t) * m + j] = b.y[t * m + j]! - ym[j]!;
    }
    at += b.rows;
  }
  // Xc Xc^T, its lower triangle (all that Cholesky reads): rows^2 K flops
  const gram = new Float64Array(rows * rows);
  await la.addLowerGram(gram, rows, xc, k);
  return {
    // X1^T X1's diagonal: the columns' sums of squares, and the row count for the bias
    maxDiag: sq.reduce((a, b) => Math.max(a, b), rows),
    async solve(ridge) {
      const chol = await la.cholesky(gram, rows, { ridge });
      if (!chol) return undefined;
      const w = await la.matmul(xc, k, rows, await la.solve(chol, yc, m), m, { a: true });
      const a = new Float64Array((k + 1) * m);
      a.set(w);
      for (let j = 0; j < m; j++) {
        let b = ym[j]!;
        for (let i = 0; i < k; i++) b -= xm[i]! * w[i * m + j]!;
        a[k * m + j] = b;
      }
      return a;
    },
  };
}

/**
 * ||X1 A - Y||^2 / ||Y||^2 from the moments (or rows) of any data set (training or
 * test), summed over the maps; `a` holds each map's (K+1) x m solution, row-major.
 */
export async function fitErrorOf(a: readonly Float64Array[], moments: readonly LsqMoments[], session: SessionOptions = {}): Promise<number> {
  const la = await DenseLinalg.create(session, Math.max(...moments.map((mo) => mo.k + 1)));
  try {
    let residual = 0,
      total = 0;
    for (let i = 0; i < moments.length; i++) {
      residual += await residualOf(la, moments[i]!, a[i]!);
      total += moments[i]!.yy;
    }
    return total === 0 ? 0 : residual / total;
  } finally {
    await la.release();
  }
}

/**
 * ||X1 A - Y||^2 of one map: from the moments as ||Y||^2 - 2 tr(A^T X1^T Y) +
 * tr(A^T X1^T X1 A), or from the kept rows directly.
 */
async function residualOf(la: DenseLinalg, mo: LsqMoments, sol: Float64Array): Promise<number> {
  const n = mo.k + 1;
  if (mo.form === 'dual') {
    let sum = 0;
    for (const b of mo.batches) {
      const fit = await la.matmul(b.x1t, b.rows, n, sol, mo.m, { a: true });
      for (let i = 0; i < fit.length; i++) sum += (fit[i]! - b.y[i]!) ** 2;
    }
    return sum;
  }
  const ga = await la.matmul(mo.g, n, n, sol, mo.m);
  let quad = 0,
    cross = 0;
  for (let p = 0; p < sol.length; p++) {
    quad += sol[p]! * ga[p]!;
    cross += sol[p]! * mo.r[p]!;
  }
  return Math.max(0, mo.yy - 2 * cross + quad);
}
