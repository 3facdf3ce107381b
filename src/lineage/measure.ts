/**
 * One pass over the models' weights, one layer at a time across all models (memory:
 * one layer x number of models), producing everything lineage needs: the pairwise
 * distance D, the clustering distance, per-model kurtosis and weight norms.
 *
 * - ft: D[u,v] = mean over selected layers of sqrt(mean((W_u - W_v)^2)) (Gram product of the
 *   differences to the first model in float64, with direct repair of near pairs, see gram.ts);
 * - lowrank: D[u,v] = sum over selected layers of rank(W_u - W_v) (numpy's tolerance).
 * - spectral (beyond the reference): D[u,v] = mean over selected layers of the mean of
 *   sigma^q over the singular values of W_u - W_v (q = `schatten`, default
 *   DEFAULT_SCHATTEN; q = 1 is the nuclear norm): nearly additive along fine-tuning paths,
 *   where the RMS difference is not (spectral.ts).
 * - clustering distance 'reference': ft = mean over all shared 2-D layers of mean |W_u - W_v|
 *   (blocked SIMD sums, abs-diff.ts), lowrank = D (the reference's choices); 'selected': D itself.
 *
 * @example
 *   const m = await measureModels(openSources(['zoo/']), { mode: 'ft' });
 *   m.d[0 * m.names.length + 1]   // distance between the first two models
 */
import { defaultThreads, type SessionOptions } from '../runtime/session.js';
import { progress, warn } from '../util/progress.js';
import { OptionError, UserError } from '../util/errors.js';
import { absDiffSums, meanAbsFromSums } from './abs-diff.js';
import { LayerPool, type LayerResult, type LayerWork, type RowStatistics } from './layer-pool.js';
import { weightMoments } from './kurtosis.js';
import { MODES, type LineageMode, type ModeOption } from './modes.js';
import { all2dLayers, selectLayers, type LayerSelection, type SelectedLayer } from './select.js';
import type { ModelSource } from './sources.js';

export const CLUSTER_DISTANCES = ['reference', 'selected'] as const;
export type ClusterDistance = (typeof CLUSTER_DISTANCES)[number];
/** Schatten exponent of the spectral mode (chosen on runs/zoo/ft-s1, see bench/lineage-research.ts). */
export const DEFAULT_SCHATTEN = 0.25;

/**
 * Mode 'auto' (the default) picks spectral when its estimated cost is affordable (the pairs'
 * SVD work under SPECTRAL_BUDGET_FLOPS, minutes in JavaScript) and ft otherwise.
 */
export const SPECTRAL_BUDGET_FLOPS = 2e11;

export interface MeasureOptions {
  mode?: ModeOption;
  /** layer patterns (default: square 2-D float matrices) */
  layers?: readonly string[];
  clusterDistance?: ClusterDistance;
  /** exponent q of the spectral mode */
  schatten?: number;
  session?: SessionOptions;
  /**
   * Worker threads that compute the weight statistics, the Gram product and the mean |dW|
   * clustering distance while the layers are read (layer-pool.ts); 0 does everything on
   * this thread. Default: one fewer than the session's thread count (else the number of
   * cores), since this thread reads the layers and then joins in, when the layers read hold
   * at least POOL_MIN_WEIGHTS weights across models, else 0 (starting workers costs a few
   * hundred milliseconds). The results are the same either way.
   */
  workers?: number;
}

/** Below this many selected weights (all models together) starting worker threads costs more than it saves. */
export const POOL_MIN_WEIGHTS = 2 ** 25;
const MAX_WORKERS = 256;

export interface Measurements {
  names: string[];
  paths: string[];
  mode: LineageMode;
  /** the Schatten exponent (spectral mode only) */
  schatten: number | null;
  selection: LayerSelection;
  /** n x n pairwise distance (row-major) */
  d: Float64Array;
  /** n x n distance used for Ward clustering */
  clusterD: Float64Array;
  clusterDistance: ClusterDistance;
  /** per model: sum over selected layers of Fisher excess kurtosis */
  kurtosis: Float64Array;
  /** per model: sum over selected layers of mean(W^2) */
  meanSquare: Float64Array;
  stats: { layersRead: number; bytesRead: number; seconds: number; repairedPairs: number };
}

/** Estimated floating-point work of spectral distances: per pair and layer, a Gram product and a symmetric eigensolve. */
export function spectralCost(layers: readonly SelectedLayer[], n: number): number {
  const pairs = (n * (n - 1)) / 2;
  let perPair = 0;
  for (const l of layers) {
    if (l.shape.length !== 2) return Infinity;
    const a = Math.min(l.shape[0]!, l.shape[1]!),
      b = Math.max(l.shape[0]!, l.shape[1]!);
    perPair += a * a * b + (4 / 3) * a ** 3;
  }
  return pairs * perPair;
}

function resolveMode(mode: ModeOption, layers: readonly SelectedLayer[], n: number): LineageMode {
  if (mode !== 'auto') return mode;
  return spectralCost(layers, n) <= SPECTRAL_BUDGET_FLOPS ? 'spectral' : 'ft';
}

/** Per row of an [n x p] stack: kurtosis and sum of squares, on this thread (what the pool's workers compute). */
function rowStatistics(stack: Float32Array, n: number, p: number): RowStatistics {
  const kurtosis = new Float64Array(n),
    sumSquares = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const m = weightMoments(stack.subarray(i * p, (i + 1) * p));
    kurtosis[i] = m.kurtosis;
    sumSquares[i] = m.sumSquares;
  }
  return { kurtosis, sumSquares };
}

/** A layer's work on this thread, with the same functions as the pool (the Gram is left to the mode's layerDistance). */
function layerHere(stack: Float32Array, n: number, p: number, work: LayerWork): LayerResult {
  return {
    rows: work.stats ? rowStatistics(stack, n, p) : undefined,
    absSums: work.absDiff ? absDiffSums(stack, n, p) : undefined,
  };
}

/** The first model whose row of the stack holds a non-finite value (only looked for once a sum came out non-finite). */
function nonFiniteRow(stack: Float32Array, n: number, p: number): number {
  for (let i = 0; i < n; i++) for (let k = i * p; k < (i + 1) * p; k++) if (!Number.isFinite(stack[k]!)) return i;
  return -1;
}

export async function measureModels(models: readonly ModelSource[], opts: MeasureOptions = {}): Promise<Measurements> {
  const clusterDistance = opts.clusterDistance ?? 'reference';
  const schatten = opts.schatten ?? DEFAULT_SCHATTEN;
  if (!(schatten > 0 && schatten <= 2)) throw new OptionError((o) => `lineage: ${o('schatten')} must be in (0, 2], got ${opts.schatten}`);
  if (opts.workers !== undefined && !(Number.isInteger(opts.workers) && opts.workers >= 0 && opts.workers <= MAX_WORKERS))
    throw new OptionError((o) => `lineage: ${o('workers')} must be an integer from 0 to ${MAX_WORKERS}, got ${opts.workers}`);
  const n = models.length;
  if (n < 2) throw new UserError(`lineage: needs at least 2 models, got ${n}`);
  const selection = selectLayers(models, opts.layers ? { patterns: opts.layers } : {});
  const mode = resolveMode(opts.mode ?? 'auto', selection.layers, n);
  const rule = MODES[mode];
  if (opts.schatten !== undefined && !rule.schatten) warn(`lineage: the Schatten exponent applies to mode spectral only; mode ${mode} does not use it`);
  const selected = new Set(selection.layers.map((l) => l.name));
  const not2d = selection.layers.find((l) => l.shape.length !== 2);
  if (rule.matrices && not2d)
    throw new OptionError(
      (o) => `lineage: ${o('mode', mode)} compares matrices, but layer "${not2d.name}" is [${not2d.shape.join('x')}]; narrow ${o('layers')} to 2-D weights`,
    );
  const l1Layers = rule.referenceClustering && clusterDistance === 'reference' ? all2dLayers(models) : [];
  const l1Names = new Set(l1Layers.map((l) => l.name));
  // every layer read once, in the first model's order
  const toRead: SelectedLayer[] = [...selection.layers, ...l1Layers.filter((l) => !selected.has(l.name))];

  const t0 = performance.now();
  const d = new Float64Array(n * n);
  const l1 = new Float64Array(n * n);
  const kurtosis = new Float64Array(n);
  const meanSquare = new Float64Array(n);
  let bytesRead = 0,
    repairedPairs = 0;
  const resources = await rule.resources(opts.session);
  const bar = progress('lineage: reading layers', toRead.length);
  const largest = toRead.reduce((most, l) => Math.max(most, l.size), 0);
  // one thread per core, this one included: a worker more than the cores costs CPU time (7.0-7.2 -> 7.9-8.0 CPU s on the 105-model benchmark, 2 cores)
  const workers = opts.workers ?? (n * toRead.reduce((sum, l) => sum + l.size, 0) >= POOL_MIN_WEIGHTS ? (opts.session?.threads ?? defaultThreads()) - 1 : 0);
  let pool: LayerPool | undefined;
  try {
    pool = workers > 0 ? await LayerPool.create(workers, { gram: rule.gram, session: opts.session }) : undefined;
    // one buffer for every layer, sized for the largest: a fresh 100 MB+ array per layer costs more in page faults than the arithmetic
    const buffer = pool ? pool.sharedFloats(n * largest) : new Float32Array(n * largest);
    for (const layer of toRead) {
      const p = layer.size;
      const stack = buffer.subarray(0, n * p);
      const isSelected = selected.has(layer.name);
      const work: LayerWork = { stats: isSelected, gram: isSelected && rule.gram, absDiff: l1Names.has(layer.name) };
      // the pool's workers take each row as it is read (statistics), then the column blocks of the Gram and the |dW| sums
      const run = pool?.begin(stack, n, p, work);
      models.forEach((m, i) => {
        m.readInto(layer.name, stack.subarray(i * p, (i + 1) * p));
        run?.rowReady(i);
        bytesRead += p * 4;
      });
      const result = run ? await run.finish() : layerHere(stack, n, p, work);
      const nonFinite = (): UserError =>
        new UserError(`lineage: layer "${layer.name}" of ${models[Math.max(0, nonFiniteRow(stack, n, p))]!.name} holds non-finite values`);
      if (result.rows) {
        const { kurtosis: k, sumSquares } = result.rows;
        for (let i = 0; i < n; i++) {
          if (!Number.isFinite(k[i]!)) throw nonFinite();
          kurtosis[i]! += k[i]!;
          meanSquare[i]! += sumSquares[i]! / p;
        }
        const term = await rule.layerDistance(
          { stack, n, size: p, shape: layer.shape, layers: selection.layers.length, schatten, gram: result.gram },
          resources,
        );
        repairedPairs += term.repaired;
        for (let k = 0; k < n * n; k++) d[k]! += term.d[k]!;
      }
      if (result.absSums) {
        const a = meanAbsFromSums(result.absSums, n, p);
        for (let k = 0; k < n * n; k++) {
          if (!Number.isFinite(a[k]!)) throw nonFinite();
          l1[k]! += a[k]! / l1Layers.length;
        }
      }
      bar.tick(1, layer.name);
    }
  } finally {
    await pool?.close();
    await resources.release();
  }
  const seconds = (performance.now() - t0) / 1000;
  bar.done(`${toRead.length} layers, ${(bytesRead / 1e6).toFixed(1)} MB of weights`);
  return {
    names: models.map((m) => m.name),
    paths: models.map((m) => m.path),
    mode,
    schatten: rule.schatten ? schatten : null,
    selection,
    d,
    clusterD: l1Layers.length > 0 ? l1 : d,
    clusterDistance: l1Layers.length > 0 ? 'reference' : 'selected',
    kurtosis,
    meanSquare,
    stats: { layersRead: toRead.length, bytesRead, seconds, repairedPairs },
  };
}
