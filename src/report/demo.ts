/**
 * The main job (`modelsmith demo`): an end-to-end run on the Fashion-MNIST sample shipped
 * with modelsmith, writing models and a report under runs/demo/.
 *
 * @example
 *   const r = await runDemo({ outDir: 'runs/demo' });
 *   console.log(r.models.map((m) => [m.name, m.accuracy]));
 */
import { join } from 'node:path';
import { createZooModel } from '../nn/zoo.js';
import { loadModel, saveModel } from '../onnx/proto.js';
import { openDataset } from '../data/resolve.js';
import { evaluate } from '../runtime/evaluate.js';
import type { SessionOptions } from '../runtime/session.js';
import { train } from '../autodiff/train.js';
import { describeModel } from './inspect.js';
import { writeFileAtomic } from '../util/atomic.js';
import { writeResultJson } from '../util/provenance.js';
import { pct } from '../util/format.js';
import { runLineageDemo, type LineageDemoResult } from './demo-lineage.js';
import { runLegoDemo, legoDemoMarkdown, type LegoDemoResult } from './demo-lego.js';
import { runStitchDemo, stitchDemoMarkdown, type StitchDemoResult } from './demo-stitch.js';
import { runCkaDemo } from './demo-cka.js';
import { writeRunReport } from './html/report.js';
import type { CkaGridResult } from '../stitch/cka-grid.js';

export interface DemoOptions extends SessionOptions {
  /** dataset spec (default: the shipped Fashion-MNIST sample) */
  data?: string;
  outDir?: string;
  seed?: number;
  /** training epochs per model (default 3) */
  epochs?: number;
}

export interface DemoModel {
  name: string;
  file: string;
  arch: string;
  parameters: number;
  flopsPerImage: number;
  operators: number;
  cuts: string[];
  epochs: number;
  trainSeconds: number;
  valAccuracy: number | null;
  /** test accuracy; null for a model that is only built and inspected (an untrained net's accuracy is noise) */
  accuracy: number | null;
  samples: number;
}

export interface DemoResult {
  data: string;
  outDir: string;
  models: DemoModel[];
  /** Model LEGO: two components of the VGG and their assembly */
  lego: LegoDemoResult;
  /** lineage recovery on two small zoos made on the same data */
  lineage: LineageDemoResult;
  /** a 3x3 stitching grid ResNet -> VGG, and linear CKA ResNet -> VGG with controls */
  stitch: StitchDemoResult;
  cka: CkaGridResult;
  /** the report page, report.html in outDir */
  report: string;
  seconds: number;
}

/** The zoo models the demo trains: small enough to train in seconds on a laptop CPU. */
const DEMO_MODELS: { name: string; arch: string; opts: { width?: number; blocks?: number[] }; train: boolean }[] = [
  { name: 'mlp', arch: 'mlp', opts: {}, train: true },
  { name: 'lenet5', arch: 'lenet5', opts: {}, train: true },
  { name: 'resnet1111-w0.25', arch: 'resnet', opts: { blocks: [1, 1, 1, 1], width: 0.25 }, train: true },
  { name: 'vgg11-w0.25', arch: 'vgg11', opts: { width: 0.25 }, train: true },
  // 150 MFLOPs per image: built and inspected, trained only by `modelsmith train`
  { name: 'inception-w0.25', arch: 'inception', opts: { width: 0.25 }, train: false },
];

/**
 * The demo: trains small models, then disassembles, assembles, stitches and recovers lineage, and writes a report.
 *
 * @example
 *   const r = await runDemo({ data: 'fashion-mnist-sample', outDir: 'runs/demo', epochs: 1 });
 */
export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const start = Date.now();
  const outDir = opts.outDir ?? join('runs', 'demo');
  const spec = opts.data ?? 'fashion-mnist-sample';
  const trainSet = await openDataset(spec, 'train');
  const test = await openDataset(spec, 'test');
  const seed = opts.seed ?? 0;
  const epochs = opts.epochs ?? 3;
  const models: DemoModel[] = [];
  for (const s of DEMO_MODELS) {
    const file = join(outDir, 'models', `${s.name}.onnx`);
    let model = createZooModel(s.arch, { input: [...test.shape], classes: test.classes, seed, ...s.opts });
    const t0 = Date.now();
    let valAccuracy: number | null = null;
    if (s.train) {
      const r = await train({
        model,
        data: trainSet,
        epochs,
        batchSize: 64,
        lr: 0.05,
        optimizer: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 },
        schedule: { kind: 'cosine', warmupSteps: 0 },
        seed,
        output: file,
        session: opts,
      });
      valAccuracy = r.epochs[r.epochs.length - 1]!.valAccuracy;
      model = loadModel(file);
    } else {
      saveModel(model, file);
    }
    const trainSeconds = (Date.now() - t0) / 1000;
    const report = describeModel(model, file);
    const ev = s.train ? await evaluate(model, test, { ...opts, file, label: `eval ${s.name}` }) : undefined;
    models.push({
      name: s.name,
      file,
      arch: s.arch,
      parameters: report.parameters,
      flopsPerImage: report.flopsPerImage,
      operators: Object.values(report.operators).reduce((a, b) => a + b, 0),
      cuts: report.cuts.map((c) => c.name),
      epochs: s.train ? epochs : 0,
      trainSeconds,
      valAccuracy,
      accuracy: ev?.accuracy ?? null,
      samples: ev?.samples ?? 0,
    });
  }
  const fileOf = (name: string): string => models.find((m) => m.name === name)!.file;
  const session: SessionOptions = { ...(opts.threads ? { threads: opts.threads } : {}), ...(opts.provider ? { provider: opts.provider } : {}) };
  const lego = await runLegoDemo({
    model: loadModel(fileOf('vgg11-w0.25')),
    name: 'vgg11-w0.25',
    train: trainSet,
    test,
    outDir,
    session,
  });
  const lineage = await runLineageDemo({ ...session, data: spec, outDir: join(outDir, 'lineage'), seed });
  const stitch = await runStitchDemo({ ...session, a: fileOf('resnet1111-w0.25'), b: fileOf('vgg11-w0.25'), data: spec, outDir, seed });
  const cka = await runCkaDemo(fileOf('resnet1111-w0.25'), fileOf('vgg11-w0.25'), test, join(outDir, 'cka'), { ...session, seed });
  const result: DemoResult = {
    data: test.source,
    outDir,
    models,
    lego,
    lineage,
    stitch,
    cka: cka.result,
    report: join(outDir, 'report.html'),
    seconds: (Date.now() - start) / 1000,
  };
  writeResultJson(join(outDir, 'results.json'), result);
  writeFileAtomic(
    join(outDir, 'report.md'),
    [demoMarkdown(result, trainSet.source), legoDemoMarkdown(lego), lineageMarkdown(lineage), stitchDemoMarkdown(stitch), cka.markdown].join('\n'),
  );
  await writeRunReport(outDir, { title: 'modelsmith demo' });
  return result;
}

function lineageMarkdown(r: LineageDemoResult): string {
  const row = (name: string, s: LineageDemoResult['full']): string => `| ${name} | ${pct(s.directed)} | ${pct(s.undirected)} | ${pct(s.clustering)} |`;
  return [
    '## Lineage recovery',
    '',
    `Two zoos of ${r.models} models each (2 trees, 1 root + 2 children + 4 grandchildren, MLP 64-64-64), really fine-tuned on the same data; recovered from the weights alone with the number of trees given (${r.seconds.toFixed(1)} s).`,
    '',
    '| fine-tuning | directed accuracy | undirected | clustering |',
    '|---|---|---|---|',
    row('full', r.full),
    row('low-rank (LoRA)', r.lowrank),
    '',
  ].join('\n');
}

function demoMarkdown(r: DemoResult, trainSource: string): string {
  const acc = (x: number | null): string => (x === null ? '-' : pct(x));
  const rows = r.models.map(
    (m) =>
      `| ${m.name} | ${m.parameters.toLocaleString('en-US')} | ${(m.flopsPerImage / 1e6).toFixed(2)} | ${m.cuts.length} | ${m.epochs} | ${m.trainSeconds.toFixed(1)} | ${acc(m.valAccuracy)} | ${acc(m.accuracy)} |`,
  );
  return [
    '# modelsmith demo',
    '',
    `Training data: ${trainSource}`,
    '',
    `Test data: ${r.data}`,
    '',
    'Zoo models (seed 0) trained with SGD (momentum 0.9, lr 0.05, cosine, weight decay 5e-4, batch 64) on the training split, 10% held out for validation; test accuracy reported only.',
    '',
    '| model | parameters | MFLOPs/image | cut points | epochs | train s | val accuracy | test accuracy |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `Run time: ${r.seconds.toFixed(1)} s. Reproduce: \`npm run demo\`.`,
    '',
  ].join('\n');
}
