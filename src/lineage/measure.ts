/**
 * One pass over the models' weights, one layer at a time across all models, read in column
 * panels (memory: one panel of about PANEL_BYTES; one layer x number of models where whole
 * matrices are needed), producing everything lineage needs: the pairwise
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
import { addBlock, directSquaredDistance, stackDistances, type ExactDistances, type GramEngine } from './gram.js';
import { LayerPool, type LayerResult, type LayerWork } from './layer-pool.js';
import { MOMENT_CHUNK, MOMENT_FIELDS, accumulateMoments, momentsResult } from './kurtosis.js';
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
  /**
   * Bytes of weights held at a time across the models (default PANEL_BYTES): layers are read
   * in column panels of about this size, which bounds memory; the results do not depend on
   * it beyond float64 rounding (and not at all while panels hold whole moment chunks).
   */
  panelBytes?: number;
}

/** the smallest panelBytes taken: below it the calls per value, not the memory, would dominate */
export const MIN_PANEL_BYTES = 4096;

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
  /** bytesRead: every layer once; bytesReread: rows read again to recompute near pairs exactly (gram.ts) */
  stats: { layersRead: number; bytesRead: number; bytesReread: number; seconds: number; repairedPairs: number };
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

/**
 * Layers are read in column panels: every model's values offset .. offset + width at a
 * time, about PANEL_BYTES across the models, and each panel's moments, Gram blocks and
 * |dW| blocks are added up in panel order. So memory holds a panel, not a layer across
 * models (a 768x768 layer of 105 models is 248 MB, its panels 27.5 MB; a 4096x11008 layer
 * of 100 models would be 18 GB), and the big buffer is never touched fresh: first-touched
 * memory cost 6-10 s per GB on the machine this was measured on (bench/lineage.ts: the
 * first 248 MB layer took 1.0-1.1 s to read, later ones 32-40 ms). Layers are read whole
 * where a mode compares whole matrices (lowrank, spectral) or a source cannot read part
 * of a layer (ONNX files).
 */
export const PANEL_BYTES = 32 * 1024 * 1024;
/** the narrowest panel, where many models leave less than a moment chunk per model in PANEL_BYTES */
const MIN_PANEL = 1024;

/** Values offset .. offset + width of every model's layer. */
export interface Panel {
  offset: number;
  width: number;
}

/**
 * The panels a layer of `size` values is read in across n models: the whole layer when
 * `whole`, else widths of a multiple of MOMENT_CHUNK where that fits PANEL_BYTES (so the
 * rows' moments come out bit for bit as from whole rows, kurtosis.ts), else of a multiple
 * of MIN_PANEL values.
 */
export function layerPanels(size: number, n: number, whole: boolean, panelBytes = PANEL_BYTES): Panel[] {
  let width = size;
  if (!whole) {
    const wanted = Math.floor(panelBytes / (4 * n));
    const step = wanted >= MOMENT_CHUNK ? MOMENT_CHUNK : MIN_PANEL;
    width = Math.max(1, Math.min(size, Math.max(MIN_PANEL, wanted - (wanted % step))));
  }
  const panels: Panel[] = [];
  for (let offset = 0; offset < size; offset += width) panels.push({ offset, width: Math.min(width, size - offset) });
  return panels;
}

function readPanel(model: ModelSource, layer: string, size: number, { offset, width }: Panel, target: Float32Array): void {
  if (offset === 0 && width === size) model.readInto(layer, target);
  else model.readSliceInto!(layer, offset, target);
}

/** A panel's work on this thread, with the same functions, in the same order, as the pool. */
async function panelHere(
  stack: Float32Array,
  n: number,
  w: number,
  work: LayerWork,
  moments: Float64Array | undefined,
  engine?: GramEngine,
): Promise<LayerResult> {
  if (work.stats) for (let i = 0; i < n; i++) accumulateMoments(moments!, i * MOMENT_FIELDS, stack.subarray(i * w, (i + 1) * w));
  return {
    gram: work.gram ? await engine!.gram(stack, n, w) : undefined,
    absSums: work.absDiff ? absDiffSums(stack, n, w) : undefined,
  };
}

/**
 * Exact squared distances of pairs of rows of a layer read in panels: the rows in the pairs
 * are read again, panel by panel, into the panel buffer (pairs the Gram estimate cannot
 * resolve are rare: siblings far from the reference row, gram.ts).
 */
function rereadDistances(
  models: readonly ModelSource[],
  layer: SelectedLayer,
  panels: readonly Panel[],
  buffer: Float32Array,
  reread: { bytes: number },
): ExactDistances {
  return (pairs) => {
    const rows = [...new Set(pairs.flat())].sort((a, b) => a - b);
    const slot = new Map(rows.map((r, k) => [r, k]));
    const out = new Float64Array(pairs.length);
    for (const panel of panels) {
      const w = panel.width;
      const stack = buffer.subarray(0, rows.length * w);
      rows.forEach((r, k) => readPanel(models[r]!, layer.name, layer.size, panel, stack.subarray(k * w, (k + 1) * w)));
      reread.bytes += rows.length * w * 4;
      pairs.forEach(([i, j], q) => (out[q]! += directSquaredDistance(stack, slot.get(i)!, slot.get(j)!, w)));
    }
    return out;
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
  const panelBytes = opts.panelBytes ?? PANEL_BYTES;
  if (!(Number.isInteger(panelBytes) && panelBytes >= MIN_PANEL_BYTES))
    throw new OptionError((o) => `lineage: ${o('panelBytes')} must be an integer of at least ${MIN_PANEL_BYTES}, got ${opts.panelBytes}`);
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
  const reread = { bytes: 0 };
  const resources = await rule.resources(opts.session);
  const bar = progress('lineage: reading layers', toRead.length);
  const sliced = models.every((m) => m.readSliceInto !== undefined);
  const plan = toRead.map((layer) => {
    const isSelected = selected.has(layer.name);
    const work: LayerWork = { stats: isSelected, gram: isSelected && rule.gram, absDiff: l1Names.has(layer.name) };
    return { layer, isSelected, work, panels: layerPanels(layer.size, n, !sliced || (isSelected && !rule.gram), panelBytes) };
  });
  const widest = plan.reduce((most, { panels }) => Math.max(most, ...panels.map((q) => q.width)), 0);
  // one thread per core, this one included: a worker more than the cores costs CPU time (7.0-7.2 -> 7.9-8.0 CPU s on the 105-model benchmark, 2 cores)
  const workers = opts.workers ?? (n * toRead.reduce((sum, l) => sum + l.size, 0) >= POOL_MIN_WEIGHTS ? (opts.session?.threads ?? defaultThreads()) - 1 : 0);
  let pool: LayerPool | undefined;
  try {
    pool = workers > 0 ? await LayerPool.create(workers, { gram: rule.gram, session: opts.session }) : undefined;
    // one buffer for every panel, sized for the widest: fresh memory per panel costs more in page faults than the arithmetic
    const buffer = pool ? pool.sharedFloats(n * widest) : new Float32Array(n * widest);
    for (const { layer, isSelected, work, panels } of plan) {
      const p = layer.size;
      const moments = work.stats ? (pool ? pool.sharedMoments(n) : new Float64Array(n * MOMENT_FIELDS)) : undefined;
      const gram = work.gram ? new Float64Array(n * n) : undefined;
      const absSums = work.absDiff ? new Float64Array(n * n) : undefined;
      const nonFinite = (i: number): UserError => new UserError(`lineage: layer "${layer.name}" of ${models[Math.max(0, i)]!.name} holds non-finite values`);
      for (const panel of panels) {
        const w = panel.width;
        const stack = buffer.subarray(0, n * w);
        // the pool's workers take each row as it is read (moments), then the column blocks of the Gram and the |dW| sums
        const run = pool?.begin(stack, n, w, work, moments);
        models.forEach((m, i) => {
          readPanel(m, layer.name, p, panel, stack.subarray(i * w, (i + 1) * w));
          run?.rowReady(i);
          bytesRead += w * 4;
        });
        const part = run ? await run.finish() : await panelHere(stack, n, w, work, moments, resources.engine);
        if (part.gram) addBlock(gram!, part.gram);
        if (part.absSums) {
          if (!part.absSums.every(Number.isFinite)) throw nonFinite(nonFiniteRow(stack, n, w));
          addBlock(absSums!, part.absSums);
        }
      }
      if (moments) {
        for (let i = 0; i < n; i++) {
          const r = momentsResult(moments, i * MOMENT_FIELDS);
          if (!Number.isFinite(r.kurtosis)) throw nonFinite(i);
          kurtosis[i]! += r.kurtosis;
          meanSquare[i]! += r.sumSquares / p;
        }
      }
      if (isSelected) {
        const whole = panels.length === 1 ? buffer.subarray(0, n * p) : undefined;
        const term = await rule.layerDistance(
          {
            stack: whole,
            n,
            size: p,
            shape: layer.shape,
            layers: selection.layers.length,
            schatten,
            gram,
            exact: gram && (whole ? stackDistances(whole, p) : rereadDistances(models, layer, panels, buffer, reread)),
          },
          resources,
        );
        repairedPairs += term.repaired;
        for (let k = 0; k < n * n; k++) d[k]! += term.d[k]!;
      }
      if (absSums) {
        const a = meanAbsFromSums(absSums, n, p);
        for (let k = 0; k < n * n; k++) l1[k]! += a[k]! / l1Layers.length;
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
    stats: { layersRead: toRead.length, bytesRead, bytesReread: reread.bytes, seconds, repairedPairs },
  };
}
