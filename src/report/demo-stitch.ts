/**
 * The demo's stitching part: a small grid between two networks the demo trained (3
 * sender cuts x 3 receiver cuts; each stitch starts from the closed-form least-squares
 * solution and is then trained on the task for 1 epoch on a subset of the training
 * images), with heatmaps in <outDir>/stitch/. Well under a minute on the shipped sample.
 *
 * @example
 *   const r = await runStitchDemo({ a: 'runs/demo/models/resnet1111-w0.25.onnx', b: 'runs/demo/models/vgg11-w0.25.onnx', outDir: 'runs/demo' });
 *   r.matrix.matrices.accuracy?.trained;   // also initAccuracy (least squares alone) and fitError
 */
import { join, basename } from 'node:path';
import type { Model } from '../onnx/types.js';
import { openModel } from '../onnx/open.js';
import { saveModel } from '../onnx/proto.js';
import type { SessionOptions } from '../runtime/session.js';
import { defaultReceivers, defaultSenders, listCuts, type StitchCut } from '../stitch/cuts.js';
import { stitchGrid } from '../stitch/run.js';
import type { StitchMatrix } from '../stitch/matrix.js';

export interface StitchDemoOptions extends SessionOptions {
  /** sender and receiver: model files, or models (then saved under <outDir>/stitch/models) */
  a: string | Model;
  b: string | Model;
  /** dataset spec (default: the shipped Fashion-MNIST sample) */
  data?: string;
  outDir?: string;
  /** training images per stitch (default 1024) and test images scored (default 500) */
  trainLimit?: number;
  testLimit?: number;
  epochs?: number;
  seed?: number;
}

export interface StitchDemoResult {
  dir: string;
  matrix: StitchMatrix;
  seconds: number;
}

export async function runStitchDemo(opts: StitchDemoOptions): Promise<StitchDemoResult> {
  const start = Date.now();
  const dir = join(opts.outDir ?? join('runs', 'demo'), 'stitch');
  const file = (m: string | Model, name: string): string => {
    if (typeof m === 'string') return m;
    const f = join(dir, 'models', `${name}.onnx`);
    saveModel(m, f);
    return f;
  };
  const a = file(opts.a, 'sender'),
    b = file(opts.b, 'receiver');
  const senders = spread(defaultSenders(listCuts(openModel(a), a)));
  const receivers = spread(defaultReceivers(listCuts(openModel(b), b)));
  const session: SessionOptions = { ...(opts.threads ? { threads: opts.threads } : {}), ...(opts.provider ? { provider: opts.provider } : {}) };
  const common = {
    a,
    b,
    data: opts.data ?? 'fashion-mnist-sample',
    senders,
    receivers,
    allowSkipped: true,
    trainLimit: opts.trainLimit ?? 1024,
    testLimit: opts.testLimit ?? 500,
    session,
    ...(opts.threads ? { threads: opts.threads } : {}),
  };
  // the grid is derived from models this run has just (re)trained: a grid of earlier models is stale, not a conflict
  const r = await stitchGrid({
    ...common,
    out: dir,
    overwrite: true,
    options: { mode: 'task', init: 'lsq', epochs: opts.epochs ?? 1, batchSize: 64, lr: 0.01, seed: opts.seed ?? 0 },
  });
  return { dir, matrix: r.matrix, seconds: (Date.now() - start) / 1000 };
}

/** First, middle and last cut. */
function spread(cuts: StitchCut[]): string[] {
  const pick = cuts.length <= 3 ? cuts : [cuts[0]!, cuts[Math.floor((cuts.length - 1) / 2)]!, cuts[cuts.length - 1]!];
  return pick.map((c) => c.name);
}

/** Lines for the demo's report.md: the two matrices as Markdown tables. */
export function stitchDemoMarkdown(r: StitchDemoResult): string {
  const tableOf = (m: StitchMatrix, measure: 'accuracy' | 'initAccuracy', label: string): string[] => {
    const v = m.matrices[measure]?.trained ?? [];
    return [
      `${label} (${basename(m.a)} -> ${basename(m.b)}; rows: sender cuts, columns: receiver cuts; ${m.testImages} test images):`,
      '',
      `| sender \\ receiver | ${m.receivers.join(' | ')} |`,
      `|---|${m.receivers.map(() => '---').join('|')}|`,
      ...m.senders.map((s, i) => `| ${s} | ${v[i]!.map((x) => (x === null ? '-' : x.toFixed(2))).join(' | ')} |`),
      '',
    ];
  };
  return [
    '## Stitching',
    '',
    ...tableOf(r.matrix, 'initAccuracy', 'Least-squares stitch accuracy'),
    ...tableOf(r.matrix, 'accuracy', 'After 1 epoch of task training from it'),
    `Own test accuracy: ${Object.entries(r.matrix.base)
      .map(([k, v]) => `${k} ${v.toFixed(2)}`)
      .join(', ')}. Heatmaps: ${r.dir}/accuracy.png, ${r.dir}/init-accuracy.png, ${r.dir}/fit-error.png (${r.seconds.toFixed(1)} s).`,
    '',
  ].join('\n');
}
