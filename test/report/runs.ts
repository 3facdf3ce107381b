/**
 * Small run folders for the report tests, in the exact formats the commands write: typed
 * by the commands' own result types and written by their own writers where those are
 * cheap (writeCkaGrid, writeForestFiles), so a format change breaks these at compile time.
 */
import { join } from 'node:path';
import type { StitchMatrix } from '../../src/stitch/matrix.js';
import type { CkaGridResult } from '../../src/stitch/cka-grid.js';
import { writeCkaGrid } from '../../src/stitch/cka-grid.js';
import type { PairKind } from '../../src/stitch/controls.js';
import type { LineageForest } from '../../src/lineage/forest.js';
import { scoreForest } from '../../src/lineage/truth.js';
import { writeForestFiles } from '../../src/lineage/render.js';
import type { ExperimentResult } from '../../src/lego/experiment.js';
import type { EpochMetrics } from '../../src/autodiff/train.js';
import { writeFileAtomic } from '../../src/util/atomic.js';
import { writeResultJson } from '../../src/util/provenance.js';
import { Rng } from '../../src/util/random.js';

const KINDS: PairKind[] = ['trained', 'random-sender', 'random-receiver', 'random-both'];

/** PyTorch-export-like cut names: long, sharing their starts, differing at the end. */
export const longNames = (n: number, side: string): string[] =>
  Array.from({ length: n }, (_, i) => `/${side}/layer${1 + (i >> 3)}/layer${1 + (i >> 3)}.${i % 8}/conv_${i}/Relu_output_0`);

function matrix(rng: Rng, rows: number, cols: number, missing = -1): (number | null)[][] {
  return Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i * cols + j === missing ? null : Math.round(rng.next() * 1000) / 1000)),
  );
}

/** A finished stitching grid of rows x cols cuts with the four pair kinds (matrix.json only), one missing cell. */
export function stitchGridRun(dir: string, rows: number, cols: number): StitchMatrix {
  const rng = new Rng(1);
  const senders = longNames(rows, 'a'),
    receivers = longNames(cols, 'b');
  const m: StitchMatrix = {
    a: '/models/resnet18.onnx',
    b: '/models/resnet18-s2.onnx',
    data: 'fashion-mnist',
    mode: 'lsq',
    options: { mode: 'lsq', seed: 0 },
    senders,
    receivers,
    kinds: KINDS,
    matrices: {
      accuracy: Object.fromEntries(KINDS.map((k) => [k, matrix(rng, rows, cols, 1)])),
      fitError: Object.fromEntries(KINDS.map((k) => [k, matrix(rng, rows, cols, 1)])),
    },
    triangles: Object.fromEntries(KINDS.map((k) => [k, { lowerLeft: 0.8, elsewhere: 0.5 }])),
    base: { A: 0.9, B: 0.91, A0: 0.1, B0: 0.1 },
    complete: true,
    cells: {
      done: rows * cols * 4 - 4,
      total: rows * cols * 4,
      skipped: KINDS.map((kind) => ({ sender: senders[0]!, receiver: receivers[1]!, kind, reason: 'shapes do not stitch' })),
    },
    trainImages: 1024,
    testImages: 500,
    secondsPerCell: 0.5,
    files: [],
  };
  writeResultJson(join(dir, 'matrix.json'), m);
  return m;
}

/** A CKA folder (matrix.json and heatmaps by writeCkaGrid) of 3 x 4 cuts with controls. */
export async function ckaRun(dir: string): Promise<CkaGridResult> {
  const rng = new Rng(2);
  const senders = ['stem', 'layer1.0', 'layer2.0'],
    receivers = ['stem', 'stage1', 'stage2', 'features'];
  const cut = (name: string): { name: string; tensor: string; shape: number[] } => ({ name, tensor: `${name}.relu`, shape: [16, 7, 7] });
  const mats = (): Partial<Record<PairKind, (number | null)[][]>> => Object.fromEntries(KINDS.map((k) => [k, matrix(rng, 3, 4)]));
  const tri = (): Partial<Record<PairKind, { lowerLeft: number; elsewhere: number }>> =>
    Object.fromEntries(KINDS.map((k) => [k, { lowerLeft: 0.7, elsewhere: 0.4 }]));
  const r: CkaGridResult = {
    measure: 'linear-cka',
    estimator: 'biased',
    pool: 'none',
    a: 'a.onnx',
    b: 'b.onnx',
    data: 'fashion-mnist test split',
    split: 'test',
    samples: 100,
    seed: 0,
    senders,
    receivers,
    cuts: { senders: senders.map(cut), receivers: receivers.map(cut) },
    kinds: KINDS,
    matrices: { biased: mats(), debiased: mats() },
    triangles: { biased: tri(), debiased: tri() },
    values: [],
    seconds: 1,
  };
  r.values = r.matrices.biased.trained!;
  await writeCkaGrid(r, dir);
  return r;
}

/** A recovered forest of 7 models (two trees) scored against a truth it gets partly wrong: correct, wrong (one reversed) and missing edges. */
export async function lineageRun(dir: string): Promise<{ forest: LineageForest; truth: [string, string][] }> {
  const names = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6'];
  const edges = [
    ['m0', 'm1'],
    ['m0', 'm2'],
    ['m2', 'm3'],
    ['m4', 'm5'],
    ['m6', 'm4'],
  ] as [string, string][];
  const truth: [string, string][] = [
    ['m0', 'm1'],
    ['m0', 'm2'],
    ['m1', 'm3'],
    ['m4', 'm5'],
    ['m4', 'm6'],
  ];
  const parent = new Map(edges.map(([p, c]) => [c, p]));
  const forest: LineageForest = {
    nodes: names.map((name) => ({
      name,
      path: `/zoo/${name}.safetensors`,
      cluster: ['m4', 'm5', 'm6'].includes(name) ? 1 : 0,
      parent: parent.get(name) ?? null,
      depth: 0,
      kurtosis: 0,
    })),
    edges: edges.map(([p, c], i) => ({ parent: p, child: c, cost: 0.1 + i / 10, distance: 0.1 + i / 10 })),
    norm: Object.fromEntries(names.map((n) => [n, 0])),
    roots: ['m0', 'm6'],
    clusters: [
      ['m0', 'm1', 'm2', 'm3'],
      ['m4', 'm5', 'm6'],
    ],
    selection: { rule: 'square 2-D matrices', layers: [{ name: 'fc2.weight', shape: [64, 64] }] },
    kurtosis: {},
    settings: {
      mode: 'ft',
      schatten: null,
      lambda: 0.3,
      direction: 'parent-lower',
      signal: 'norm',
      placement: 'rooted-mst',
      directionUsed: ['parent-lower', 'parent-lower'],
      clusters: { k: 2, estimated: false },
      clusterDistance: 'reference',
    },
    stats: { layersRead: 2, bytesRead: 1000, bytesReread: 0, seconds: 0.1, repairedPairs: 0 },
  };
  await writeForestFiles(forest, dir, scoreForest(forest, { edges: truth }), truth);
  return { forest, truth };
}

/** experiment.json of lego-experiment with one row per table, plus a field this report has never seen. */
export function legoRun(dir: string): ExperimentResult & { extraTable: { task: number[]; note: string }[] } {
  const r = {
    model: '/models/vgg.onnx',
    model2: null,
    data: 'fashion-mnist test split',
    samplesPerClass: 10,
    disassembly: [
      {
        key: 'dis:0-2:10',
        model: '/models/vgg.onnx',
        task: [0, 1, 2],
        baseAccuracy: 0.9,
        baseKWay: 0.96,
        componentAccuracy: 0.95,
        relaxed: [],
        samples: 10,
        baseParameters: 100000,
        componentParameters: 30000,
        baseFlops: 2e6,
        componentFlops: 6e5,
        warnings: 0,
        seconds: 1,
      },
      {
        key: 'dis:3-9:10',
        model: '/models/vgg.onnx',
        task: [3, 4, 5, 6, 7, 8, 9],
        baseAccuracy: 0.85,
        baseKWay: 0.88,
        componentAccuracy: 0.86,
        relaxed: [6],
        samples: 10,
        baseParameters: 100000,
        componentParameters: 70000,
        baseFlops: 2e6,
        componentFlops: 1.4e6,
        warnings: 0,
        seconds: 1,
      },
    ],
    assembly: [
      {
        key: 'asm',
        tasks: [
          [0, 1, 2],
          [3, 4, 5, 6, 7, 8, 9],
        ] as [number[], number[]],
        models: ['/models/vgg.onnx', '/models/vgg.onnx'] as [string, string],
        baseAccuracy: [0.87],
        unscaled: 0.8,
        scaled: 0.84,
        finetuned: null,
        finetunedUnscaled: null,
        finetuneEpochs: 0,
        method: 'block-diagonal',
        parameters: 100000,
        flops: 2e6,
        seconds: 1,
      },
    ],
    mismatch: [
      {
        key: 'mis',
        task: [0, 1, 2],
        own: { accuracy: 0.95, meanMaxSoftmax: 0.9, samples: 300 },
        others: { samples: 700, share: { 0: 0.5, 1: 0.3, 2: 0.2 }, meanMaxSoftmax: 0.7 },
      },
    ],
    unbalanced: [
      {
        key: 'unb',
        task: [0, 1, 2],
        counts: { 0: 10, 1: 20, 2: 30 },
        balanced: 0.95,
        unbalanced: 0.93,
        perClassBalanced: { 0: 0.9, 1: 0.97, 2: 0.98 },
        perClassUnbalanced: { 0: 0.88, 1: 0.95, 2: 0.96 },
      },
    ],
    sweep: [0.1, 0.3, 0.5].map((alpha, i) => ({
      key: `sw${i}`,
      task: [0, 1, 2],
      thresholds: { alphaConv: alpha, betaConv: 0.2, alphaLinear: alpha + 0.1, betaLinear: 0.3 },
      accuracy: 0.9 - i / 20,
      parameters: 40000 - i * 10000,
      flops: 1e6,
    })),
    extraTable: [
      { task: [0], note: 'a table this report does not know' },
      { task: [1], note: 'second row' },
    ],
  };
  writeResultJson(join(dir, 'experiment.json'), r);
  return r;
}

/** Two metrics logs of `modelsmith train` (3 epochs each). */
export function trainRun(dir: string): void {
  for (const [name, shift] of [
    ['mlp.onnx', 0],
    ['lenet5.onnx', 0.05],
  ] as const) {
    const lines: EpochMetrics[] = [1, 2, 3].map((epoch) => ({
      epoch,
      step: epoch * 70,
      lr: 0.05 / epoch,
      trainLoss: 1 / epoch + shift,
      trainAccuracy: 0.6 + epoch / 20 - shift,
      valAccuracy: 0.62 + epoch / 20 - shift,
      seconds: 1,
      imagesPerSecond: 4000,
    }));
    writeFileAtomic(join(dir, `${name}.metrics.jsonl`), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  }
}
