/**
 * A finished (or partly finished) grid as matrices: matrix.json with one matrix per pair
 * kind and measure (rows: sender cuts, columns: receiver cuts, null where missing),
 * the networks' own accuracies, the lower-left-triangle summary of the reference, and
 * the heatmaps (SVG and PNG, the four pair kinds side by side).
 */
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { evaluate } from '../runtime/evaluate.js';
import { openDataset } from '../data/resolve.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { writeResultJson } from '../util/provenance.js';
import { writeHeatmaps, type HeatmapPanel } from '../plot/heatmap.js';
import type { SessionOptions } from '../runtime/session.js';
import { PAIR_TITLES, type PairKind } from './controls.js';
import { StitchContext } from './context.js';
import { openModel } from '../onnx/open.js';
import type { StitchGrid } from './grid.js';
import { basename } from 'node:path';

export type Measure = 'accuracy' | 'initAccuracy' | 'fitError' | 'testFitError' | 'vanillaAccuracy' | 'ev' | 'es' | 'sv';

export interface StitchMatrix {
  a: string;
  b: string;
  data: string;
  mode: string;
  options: Record<string, unknown>;
  senders: string[];
  receivers: string[];
  kinds: PairKind[];
  /** measure -> kind -> values[row][col] */
  matrices: Partial<Record<Measure, Partial<Record<PairKind, (number | null)[][]>>>>;
  /**
   * Mean accuracy per kind in the lower-left triangle (sender relatively as deep as the
   * receiver or deeper: i/(rows-1) >= j/(cols-1)) and elsewhere.
   */
  triangles: Partial<Record<PairKind, { lowerLeft: number | null; elsewhere: number | null }>>;
  /** test accuracy of each network on the same test images */
  base: Record<string, number>;
  complete: boolean;
  cells: { done: number; total: number; skipped: { sender: string; receiver: string; kind: PairKind; reason: string }[] };
  trainImages: number | null;
  testImages: number | null;
  /** mean seconds per computed cell */
  secondsPerCell: number | null;
  files: string[];
}

/**
 * Writes matrix.json and the heatmaps of a grid.
 *
 * @example const m = await writeMatrix(grid, { threads: 2 });  // grid/matrix.json, grid/accuracy.png, ...
 */
export async function writeMatrix(grid: StitchGrid, session: SessionOptions = {}): Promise<StitchMatrix> {
  const f = grid.file;
  const results = grid.results();
  const senders = f.senders.map((s) => s.name),
    receivers = f.receivers.map((r) => r.name);
  const measures: Measure[] =
    f.options.mode === 'lsq'
      ? ['accuracy', 'fitError', 'testFitError']
      : f.options.mode === 'copy'
        ? ['accuracy', 'vanillaAccuracy', 'ev', 'es', 'sv']
        : f.options.init === 'lsq'
          ? ['accuracy', 'initAccuracy', 'fitError']
          : ['accuracy'];
  const matrices: StitchMatrix['matrices'] = {};
  for (const m of measures) {
    matrices[m] = {};
    for (const kind of f.kinds) {
      matrices[m]![kind] = senders.map((_, i) =>
        receivers.map((_, j) => {
          const cell = grid.cells.find((c) => c.kind === kind && c.i === i && c.j === j)!;
          const r: Partial<Record<Measure, number>> | undefined = results.get(cell.id);
          const v = r?.[m];
          return typeof v === 'number' ? v : null;
        }),
      );
    }
  }
  const triangles: StitchMatrix['triangles'] = {};
  for (const kind of f.kinds) triangles[kind] = triangleMeans(matrices.accuracy![kind]!);
  const all = [...results.values()];
  const base = await baseAccuracies(grid, session);
  const files: string[] = [];
  const title = `${basename(f.spec.a)} -> ${basename(f.spec.b)} (${f.options.mode}${f.options.mode === 'lsq' ? '' : `, ${f.options.epochs} epoch${f.options.epochs === 1 ? '' : 's'}`})`;
  const panels = (m: Measure): HeatmapPanel[] =>
    f.kinds.map((kind) => ({
      title: PAIR_TITLES[kind],
      rows: senders,
      cols: receivers,
      values: matrices[m]![kind]!,
      rowTitle: 'sender cut',
      colTitle: 'receiver cut',
    }));
  const LEGENDS: Record<Measure, string> = {
    accuracy: 'accuracy',
    fitError: 'relative fit error',
    testFitError: 'relative fit error',
    initAccuracy: 'accuracy',
    vanillaAccuracy: 'accuracy',
    ev: 'MSE',
    es: 'MSE',
    sv: 'MSE',
  };
  const heat = async (name: string, m: Measure, label: string, range?: { min: number; max: number }, digits = 2): Promise<void> => {
    files.push(...(await writeHeatmaps(join(grid.dir, name), panels(m), { title: `${label}: ${title}`, legend: LEGENDS[m], digits, ...(range ?? {}) })));
  };
  await heat(
    'accuracy',
    'accuracy',
    f.options.mode === 'copy' ? 'copy-trained stitch accuracy' : f.options.mode === 'lsq' ? 'least-squares stitch accuracy' : 'stitched accuracy',
    { min: 0, max: 1 },
  );
  if (matrices.fitError) await heat('fit-error', 'fitError', 'least-squares relative fit error (training images)', { min: 0, max: 1 });
  if (matrices.testFitError) await heat('test-fit-error', 'testFitError', 'least-squares relative fit error (test images)', { min: 0, max: 1 });
  if (matrices.initAccuracy) await heat('init-accuracy', 'initAccuracy', 'least-squares initialisation accuracy', { min: 0, max: 1 });
  if (matrices.vanillaAccuracy) await heat('vanilla-accuracy', 'vanillaAccuracy', 'task-trained stitch accuracy', { min: 0, max: 1 });
  for (const m of ['ev', 'es', 'sv'] as const) if (matrices[m]) await heat(`mse-${m}`, m, `MSE ${m.toUpperCase()}`, undefined, 3);
  const computed = all.filter((r) => typeof r.seconds === 'number');
  const matrix: StitchMatrix = {
    a: f.spec.a,
    b: f.spec.b,
    data: f.spec.data,
    mode: f.options.mode,
    options: { ...f.options },
    senders,
    receivers,
    kinds: f.kinds,
    matrices,
    triangles,
    base,
    complete: grid.pending.length === 0,
    cells: {
      done: grid.done.length,
      total: grid.cells.length,
      skipped: grid.cells.filter((c) => c.skipped).map((c) => ({ sender: senders[c.i]!, receiver: receivers[c.j]!, kind: c.kind, reason: c.skipped! })),
    },
    trainImages: all[0]?.trainImages ?? null,
    testImages: all[0]?.testImages ?? null,
    secondsPerCell: computed.length ? computed.reduce((s, r) => s + r.seconds, 0) / computed.length : null,
    files: [join(grid.dir, 'matrix.json'), ...files],
  };
  writeResultJson(join(grid.dir, 'matrix.json'), matrix);
  return matrix;
}

/** Lower-left (relative sender depth >= relative receiver depth) vs elsewhere. */
export function triangleMeans(values: (number | null)[][]): { lowerLeft: number | null; elsewhere: number | null } {
  const rows = values.length,
    cols = values[0]?.length ?? 0;
  const lo: number[] = [],
    hi: number[] = [];
  values.forEach((row, i) =>
    row.forEach((v, j) => {
      if (v === null) return;
      const ri = rows > 1 ? i / (rows - 1) : 1,
        rj = cols > 1 ? j / (cols - 1) : 0;
      (ri >= rj - 1e-9 ? lo : hi).push(v);
    }),
  );
  const mean = (a: number[]): number | null => (a.length ? a.reduce((s, x) => s + x, 0) / a.length : null);
  return { lowerLeft: mean(lo), elsewhere: mean(hi) };
}

/** The test accuracy of A, B and the random counterparts used, on the grid's test images (cached in base.json). */
export async function baseAccuracies(grid: StitchGrid, session: SessionOptions): Promise<Record<string, number>> {
  const path = join(grid.dir, 'base.json');
  const f = grid.file;
  const ids = new Set<'A' | 'B' | 'A0' | 'B0'>(['A', 'B']);
  for (const k of f.kinds) {
    if (k === 'random-sender' || k === 'random-both') ids.add('A0');
    if (k === 'random-receiver' || k === 'random-both') ids.add('B0');
  }
  const have = existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, number>) : {};
  if ([...ids].every((id) => typeof have[id] === 'number')) return have;
  const test = await openDataset(f.spec.data, 'test');
  const ctx = new StitchContext({
    a: openModel(f.spec.a),
    b: openModel(f.spec.b),
    aFile: f.spec.a,
    bFile: f.spec.b,
    train: await openDataset(f.spec.data, 'train'),
    test,
    ...(f.spec.testLimit ? { testLimit: f.spec.testLimit } : {}),
    ...(f.spec.mean ? { mean: f.spec.mean } : {}),
    ...(f.spec.std ? { std: f.spec.std } : {}),
    seed: f.options.seed,
    randomBatchNorm: f.options.randomBatchNorm ?? 'data',
    session,
  });
  await ctx.prepare(f.kinds);
  const out: Record<string, number> = {};
  for (const id of ids) {
    const src = ctx.source(id);
    const r = await evaluate(src.model, test, { ...session, indices: Array.from(ctx.test.indices), mean: src.normalization.mean, std: src.normalization.std });
    out[id] = r.accuracy;
  }
  writeJsonAtomic(path, out);
  return out;
}
