/**
 * Linear CKA between every sender cut of network A and every receiver cut of network B,
 * on the same n images, in the layout of a stitching grid (rows: A's sender cuts,
 * columns: B's receiver cuts, the same defaults), with the biased and debiased
 * estimators side by side.
 *
 * @example
 *   const ds = await openDataset('fashion-mnist', 'test');
 *   const r = await computeCkaGrid({ model: openModel('a.onnx'), file: 'a.onnx' }, { model: openModel('b.onnx'), file: 'b.onnx' }, ds, { samples: 1000 });
 *   r.matrices.biased.trained[0][0];      // CKA(A's first sender cut, B's first receiver cut)
 *   await writeCkaGrid(r, 'runs/cka/');    // matrix.json, cka.svg, cka.png (+ cka-biased.*, cka-debiased.* with controls)
 */
import { resolve, join } from 'node:path';
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { checkInputShape } from '../runtime/infer.js';
import { subsetIndices } from '../data/classes.js';
import { resolveNormalization } from '../runtime/normalization.js';
import type { SessionOptions } from '../runtime/session.js';
import { chooseCuts, defaultReceivers, defaultSenders, type StitchCut } from './cuts.js';
import { computeGrams, type CutGram } from './cka-grams.js';
import { ckaPrepared, prepareGram, type CenteredGram } from './cka.js';
import { writeHeatmaps } from '../plot/heatmap.js';
import { writeResultJson } from '../util/provenance.js';
import { Rng } from '../util/random.js';
import { controlSeed, randomControl, PAIR_TITLES, type PairKind, type RandomBatchNorm } from './controls.js';
import { triangleMeans } from './matrix.js';
import { CKA_POOLS, viewShape, type CkaPool } from './views.js';
import { info } from '../util/progress.js';
import { OptionError, UserError } from '../util/errors.js';

/** One of the two networks. */
export interface CkaNetwork {
  model: Model;
  /** file name, for messages and matrix.json */
  file: string;
}

export interface CkaGridOptions extends SessionOptions {
  /** images compared (default 1000; all of the split when it has fewer) */
  samples?: number;
  /** which images: a seeded uniform sample of the split (default seed 0) */
  seed?: number;
  /** only images of these dataset classes */
  classes?: readonly number[];
  /** A's cuts (rows); default: the stitching senders (stem and every block) */
  senders?: readonly string[];
  /** B's cuts (columns); default: the stitching receivers (into every block, into the classifier) */
  receivers?: readonly string[];
  /** which estimator the result's `values` holds (both are always computed) */
  debiased?: boolean;
  /**
   * also the three controls of a stitching grid: random sender -> B, A -> random receiver,
   * random -> random (the same random networks as `modelsmith stitch --controls --seed`)
   */
  controls?: boolean;
  /** BatchNorm statistics of the random networks (default 'data', as in stitching grids; see controls.ts) */
  randomBatchNorm?: RandomBatchNorm;
  /** images that re-estimate the random networks' BatchNorm statistics (default: the compared split) */
  train?: Dataset;
  /** memory for activations and Gram matrices, in MiB (default 1024) */
  memoryMiB?: number;
  batchSize?: number;
  /** explicit input normalisation for models without metadata (both models) */
  mean?: number[];
  std?: number[];
  /** features per image: 'none' flattens every cut (default), 'tokens' averages token cuts over their tokens, 'all' also image cuts over pixels */
  pool?: CkaPool;
}

export interface CkaCut {
  name: string;
  tensor: string;
  /** per-image shape of the tensor */
  shape: number[];
  /** the features compared per image (the shape after pooling) */
  features?: number[];
}

export type CkaEstimator = 'biased' | 'debiased';

export interface CkaGridResult {
  measure: 'linear-cka';
  /** the estimator `values` holds */
  estimator: CkaEstimator;
  a: string;
  b: string;
  data: string;
  split: string;
  samples: number;
  seed: number;
  /** row and column names, as in a stitching grid's matrix.json */
  senders: string[];
  receivers: string[];
  cuts: { senders: CkaCut[]; receivers: CkaCut[] };
  /** 'trained', plus the three random controls with --controls */
  kinds: PairKind[];
  /** how features were taken per image (views.ts): none (flattened), tokens, all */
  pool: CkaPool;
  /** estimator -> pair kind -> values[sender][receiver]; null where a representation is constant over the samples */
  matrices: Record<CkaEstimator, Partial<Record<PairKind, (number | null)[][]>>>;
  /** mean CKA in the lower-left triangle (sender relatively as deep as the receiver or deeper) and elsewhere */
  triangles: Record<CkaEstimator, Partial<Record<PairKind, { lowerLeft: number | null; elsewhere: number | null }>>>;
  /** the trained pair's matrix for `estimator` */
  values: (number | null)[][];
  seconds: number;
}

export const DEFAULT_CKA_SAMPLES = 1000;
export const DEFAULT_CKA_MEMORY_MIB = 1024;

/**
 * Computes the CKA matrices between A's sender cuts and B's receiver cuts.
 *
 * @example
 *   const r = await computeCkaGrid({ model: openModel('a.onnx'), file: 'a.onnx' }, { model: openModel('b.onnx'), file: 'b.onnx' },
 *     await openDataset('fashion-mnist', 'test'), { samples: 1000 });
 *   await writeCkaGrid(r, 'runs/cka');
 */
export async function computeCkaGrid(a: CkaNetwork, b: CkaNetwork, ds: Dataset, opts: CkaGridOptions = {}): Promise<CkaGridResult> {
  const t0 = Date.now();
  const pool = opts.pool ?? 'none';
  if (!CKA_POOLS.includes(pool)) throw new OptionError((o) => `${o('pool')} expects ${CKA_POOLS.join(', ')}, got "${pool}"`);
  checkSameInputs(a, b);
  checkInputShape(a.model, ds, a.file);
  checkInputShape(b.model, ds, b.file);
  const senders = chooseCuts(a.model, opts.senders, defaultSenders, a.file, 'sender');
  const receivers = chooseCuts(b.model, opts.receivers, defaultReceivers, b.file, 'receiver');
  const seed = opts.seed ?? 0;
  const among = opts.classes ? subsetIndices(ds, opts.classes) : undefined;
  const indices = sampleIndices(among?.length ?? ds.size, opts.samples ?? DEFAULT_CKA_SAMPLES, seed).map((i) => among?.[i] ?? i);
  const n = indices.length;
  if (n < 4)
    throw new UserError(
      `CKA needs at least 4 images (the debiased estimator divides by n - 3); ${ds.source} ${ds.split} has ${n}${among ? ` of classes ${opts.classes!.join(',')}` : ''}`,
    );

  // One network given twice (R1111 -> R1111 from one file) shares its Gram matrices.
  const same = resolve(a.file) === resolve(b.file);
  const kinds: PairKind[] = opts.controls ? ['trained', 'random-sender', 'random-receiver', 'random-both'] : ['trained'];
  const nets: { id: string; net: CkaNetwork; cuts: StitchCut[] }[] = [{ id: 'A', net: a, cuts: same ? unionCuts(senders, receivers) : senders }];
  if (!same) nets.push({ id: 'B', net: b, cuts: receivers });
  if (opts.controls) {
    const random = (m: Model, side: 'sender' | 'receiver'): Promise<Model> =>
      randomControl(m, controlSeed(seed, side), opts.train ?? ds, {
        batchNorm: opts.randomBatchNorm ?? 'data',
        session: sessionOpts(opts),
        normalization: resolveNormalization(m, ds.shape[0], { ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}) })
          .normalization,
      });
    nets.push({ id: 'A0', net: { model: await random(a.model, 'sender'), file: `random ${a.file}` }, cuts: senders });
    nets.push({ id: 'B0', net: { model: await random(b.model, 'receiver'), file: `random ${b.file}` }, cuts: receivers });
  }
  const budget = (opts.memoryMiB ?? DEFAULT_CKA_MEMORY_MIB) * 2 ** 20;
  const gramCount = nets.reduce((k, x) => k + x.cuts.length, 0);
  const gramBytes = 8 * n * n * gramCount;
  // After the dataset passes (activations freed), one estimator at a time holds a centred
  // copy of every row and column Gram of the pairs compared.
  const centredBytes = 8 * n * n * (senders.length + receivers.length) * (opts.controls ? 2 : 1);
  const spare = budget - gramBytes;
  if (spare < Math.min(budget / 8, 64 * 2 ** 20) || gramBytes + centredBytes > budget) {
    throw new OptionError(
      (o) =>
        `${o('samples', n)}: the Gram matrices alone need ${mib(gramBytes + centredBytes)} MiB (8 n^2 bytes for each of ${gramCount} cuts and their centred copies) of the ${mib(budget)} MiB memory budget; use fewer ${o('samples')} or a larger ${o('memoryMiB')}`,
    );
  }
  info(
    `cka: ${n} ${ds.split} images of ${ds.source}; ${senders.length} sender cuts x ${receivers.length} receiver cuts${opts.controls ? ', with random controls' : ''}`,
  );
  const grams = new Map<string, CutGram[]>();
  for (const { id, net, cuts } of nets) {
    const normalization = resolveNormalization(net.model, ds.shape[0], {
      ...(opts.mean ? { mean: opts.mean } : {}),
      ...(opts.std ? { std: opts.std } : {}),
    }).normalization;
    grams.set(
      id,
      await computeGrams(net.model, ds, cuts, {
        ...sessionOpts(opts),
        indices,
        activationBytes: spare,
        file: net.file,
        label: `cka ${net.file}`,
        normalization,
        pool,
        ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
      }),
    );
  }
  if (same) grams.set('B', grams.get('A')!);
  const gramOf = (id: string, cut: StitchCut): Float64Array => grams.get(id)!.find((g) => g.tensor === cut.tensor)!.gram;
  const pairIds: Record<PairKind, [string, string]> = {
    trained: ['A', 'B'],
    'random-sender': ['A0', 'B'],
    'random-receiver': ['A', 'B0'],
    'random-both': ['A0', 'B0'],
  };

  const matrices: CkaGridResult['matrices'] = { biased: {}, debiased: {} };
  const triangles: CkaGridResult['triangles'] = { biased: {}, debiased: {} };
  for (const est of ['biased', 'debiased'] as const) {
    const debiased = est === 'debiased';
    // Each network's centred Grams once per estimator, then every pair is one inner product.
    const centred = new Map<string, CenteredGram[]>();
    const prepared = (id: string, cuts: StitchCut[]): CenteredGram[] => {
      const key = `${id}:${cuts === senders ? 's' : 'r'}`;
      if (!centred.has(key))
        centred.set(
          key,
          cuts.map((c) => prepareGram(gramOf(id, c), n, { debiased })),
        );
      return centred.get(key)!;
    };
    for (const kind of kinds) {
      const [ra, rb] = pairIds[kind];
      const rows = prepared(ra, senders);
      const cols = prepared(rb, receivers);
      matrices[est][kind] = rows.map((r) => cols.map((c) => round(ckaPrepared(r, c))));
      triangles[est][kind] = roundTriangle(triangleMeans(matrices[est][kind]!));
    }
  }
  const describe = (c: StitchCut): CkaCut => ({ name: c.name, tensor: c.tensor, shape: [...c.shape], features: viewShape(c.shape, pool) });
  const estimator: CkaEstimator = opts.debiased ? 'debiased' : 'biased';
  return {
    measure: 'linear-cka',
    estimator,
    a: a.file,
    b: b.file,
    data: ds.source,
    split: ds.split,
    samples: n,
    seed,
    senders: senders.map((c) => c.name),
    receivers: receivers.map((c) => c.name),
    cuts: { senders: senders.map(describe), receivers: receivers.map(describe) },
    kinds,
    pool,
    matrices,
    triangles,
    values: matrices[estimator].trained!,
    seconds: (Date.now() - t0) / 1000,
  };
}

/**
 * Writes `matrix.json` and the heatmaps into `dir`: `cka.svg`/`cka.png` with the trained
 * pair's biased and debiased matrices side by side, and with controls also
 * `cka-biased.*` and `cka-debiased.*` with the four pair kinds side by side (the layout of
 * a stitching grid's accuracy heatmap).
 *
 * @example
 *   const files = await writeCkaGrid(await computeCkaGrid(a, b, test), 'runs/cka');
 */
export async function writeCkaGrid(r: CkaGridResult, dir: string): Promise<string[]> {
  const matrixPath = join(dir, 'matrix.json');
  const rows = r.senders;
  const cols = r.receivers;
  const axes = { rowTitle: 'sender cut (A)', colTitle: 'receiver cut (B)' };
  const pooling = r.pool === 'tokens' ? ', tokens mean-pooled' : r.pool === 'all' ? ', tokens and pixels mean-pooled' : '';
  const what = `A = ${baseName(r.a)}, B = ${baseName(r.b)}, ${r.samples} ${r.split} images${pooling}`;
  const files = [matrixPath];
  files.push(
    ...(await writeHeatmaps(
      join(dir, 'cka'),
      (['biased', 'debiased'] as const).map((est) => ({ title: `linear CKA (${est})`, rows, cols, values: r.matrices[est].trained!, ...axes })),
      { title: `linear CKA, ${what}`, legend: 'CKA', min: 0, max: 1 },
    )),
  );
  if (r.kinds.length > 1) {
    for (const est of ['biased', 'debiased'] as const) {
      files.push(
        ...(await writeHeatmaps(
          join(dir, `cka-${est}`),
          r.kinds.map((kind) => ({ title: PAIR_TITLES[kind], rows, cols, values: r.matrices[est][kind]!, ...axes })),
          { title: `linear CKA (${est}), ${what}`, legend: 'CKA', min: 0, max: 1 },
        )),
      );
    }
  }
  writeResultJson(matrixPath, { ...r, files });
  return files;
}

/** A seeded uniform sample of min(count, size) dataset indices, in ascending order. */
export function sampleIndices(size: number, count: number, seed: number): number[] {
  if (!Number.isInteger(count) || count <= 0) throw new OptionError((o) => `${o('samples')} expects a positive integer, got ${count}`);
  if (count >= size) return Array.from({ length: size }, (_, i) => i);
  const all = Array.from({ length: size }, (_, i) => i);
  new Rng(seed).shuffle(all);
  return all.slice(0, count).sort((x, y) => x - y);
}

function checkSameInputs(a: CkaNetwork, b: CkaNetwork): void {
  const shape = (m: Model): string | undefined => {
    const s = m.graph.inputs[0]?.shape?.slice(1);
    return s && s.every((d) => typeof d === 'number') ? s.join('x') : undefined;
  };
  const sa = shape(a.model);
  const sb = shape(b.model);
  if (sa && sb && sa !== sb) {
    throw new UserError(
      `${a.file} takes ${sa} inputs but ${b.file} takes ${sb}; CKA compares two networks on the same images, so their input shapes must match`,
    );
  }
}

function unionCuts(x: readonly StitchCut[], y: readonly StitchCut[]): StitchCut[] {
  const out = [...x];
  for (const c of y) if (!out.some((o) => o.tensor === c.tensor)) out.push(c);
  return out;
}

function round(v: number | null): number | null {
  return v === null ? null : Math.round(v * 1e6) / 1e6;
}

function roundTriangle(t: { lowerLeft: number | null; elsewhere: number | null }): { lowerLeft: number | null; elsewhere: number | null } {
  return { lowerLeft: round(t.lowerLeft), elsewhere: round(t.elsewhere) };
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
const baseName = (f: string): string => f.split(/[\\/]/).pop() ?? f;

function sessionOpts(o: SessionOptions): SessionOptions {
  return {
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.provider ? { provider: o.provider } : {}),
    ...(o.optimization ? { optimization: o.optimization } : {}),
  };
}
