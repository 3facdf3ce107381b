/**
 * The Model LEGO section of `modelsmith demo`: cut two task components out of a model
 * the demo has trained, assemble them again (with and without parameter scaling) and
 * report accuracies and sizes. Takes seconds on the shipped sample.
 *
 * @example
 *   const r = await runLegoDemo({ model: loadModel('runs/demo/models/vgg11-w0.25.onnx'), name: 'vgg11-w0.25', train, test, outDir: 'runs/demo' });
 *   console.log(legoDemoMarkdown(r));
 */
import { join } from 'node:path';
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { saveModel } from '../onnx/proto.js';
import { modelStats } from '../onnx/stats.js';
import { evaluate } from '../runtime/evaluate.js';
import type { SessionOptions } from '../runtime/session.js';
import { disassemble } from '../lego/disassemble.js';
import { scoreTask } from '../lego/score.js';
import { resolveNormalization } from '../runtime/normalization.js';
import { assemble } from '../lego/assemble.js';
import { pct } from '../util/format.js';

export interface LegoDemoOptions {
  model: Model;
  /** the model's name in the report (e.g. 'vgg11-w0.25') */
  name: string;
  train: Dataset;
  test: Dataset;
  outDir: string;
  /** the two tasks (default 0-4 and 5-9) */
  tasks?: [number[], number[]];
  samplesPerClass?: number;
  session?: SessionOptions;
}

export interface LegoDemoComponent {
  task: number[];
  file: string;
  /** the full model's N-way accuracy on the task's test images */
  baseAccuracy: number;
  /** the full model's k-way accuracy on them (its logits restricted to the task): what the component is compared with */
  baseKWay: number;
  /** the component's k-way accuracy on the same images */
  accuracy: number;
  /** per class of the task (class id -> accuracy): the full model's and the component's */
  basePerClass: Record<string, number>;
  perClass: Record<string, number>;
  parameters: number;
  flopsPerImage: number;
  warnings: string[];
}

export interface LegoDemoResult {
  model: string;
  parameters: number;
  flopsPerImage: number;
  samplesPerClass: number;
  components: LegoDemoComponent[];
  assembled: { file: string; method: string; baseAccuracy: number; unscaled: number; scaled: number; parameters: number; flopsPerImage: number };
  seconds: number;
}

export async function runLegoDemo(opts: LegoDemoOptions): Promise<LegoDemoResult> {
  const start = Date.now();
  const tasks = opts.tasks ?? [
    [0, 1, 2, 3, 4],
    [5, 6, 7, 8, 9],
  ];
  const spc = opts.samplesPerClass ?? 10;
  const session = opts.session ?? {};
  const dir = join(opts.outDir, 'lego');
  const components: LegoDemoComponent[] = [];
  const models: Model[] = [];
  for (const task of tasks) {
    const c = await disassemble(opts.model, opts.train, { task, samplesPerClass: spc, session, label: '' });
    const file = join(dir, `${opts.name}-task-${task.join('_')}.onnx`);
    saveModel(c.model, file);
    models.push(c.model);
    const s = modelStats(c.model);
    const b = await scoreTask(opts.model, opts.test, { task, session, normalization: resolveNormalization(opts.model, opts.test.shape[0]).normalization });
    const ownEval = await evaluate(c.model, opts.test, { ...session, classes: task });
    components.push({
      task,
      file,
      baseAccuracy: b.nWay.accuracy,
      baseKWay: b.kWay.accuracy,
      accuracy: ownEval.accuracy,
      basePerClass: b.kWay.perClass,
      perClass: ownEval.perClass,
      parameters: s.parameters,
      flopsPerImage: s.flopsPerImage,
      warnings: c.warnings,
    });
  }
  const parts = models.map((model, k) => ({ model, file: components[k]!.file }));
  const union = [...new Set(tasks.flat())].sort((a, b) => a - b);
  const plain = await assemble(parts, { session });
  const scaled = await assemble(parts, { session, scaleData: [opts.train], scaleSamplesPerClass: 200 });
  const file = join(dir, `${opts.name}-assembled.onnx`);
  saveModel(scaled.model, file);
  const s = modelStats(scaled.model);
  const base = modelStats(opts.model);
  return {
    model: opts.name,
    parameters: base.parameters,
    flopsPerImage: base.flopsPerImage,
    samplesPerClass: spc,
    components,
    assembled: {
      file,
      method: scaled.method,
      baseAccuracy: (await evaluate(opts.model, opts.test, { ...session, classes: union })).accuracy,
      unscaled: (await evaluate(plain.model, opts.test, { ...session, classes: union })).accuracy,
      scaled: (await evaluate(scaled.model, opts.test, { ...session, classes: union })).accuracy,
      parameters: s.parameters,
      flopsPerImage: s.flopsPerImage,
    },
    seconds: (Date.now() - start) / 1000,
  };
}

/** The demo report's Model LEGO section. */
export function legoDemoMarkdown(r: LegoDemoResult): string {
  const mf = (x: number): string => (x / 1e6).toFixed(2);
  const n = (x: number): string => x.toLocaleString('en-US');
  return [
    '## Model LEGO',
    '',
    `${r.model} (${n(r.parameters)} parameters, ${mf(r.flopsPerImage)} MFLOPs/image) disassembled into one component per task (${r.samplesPerClass} representative samples per class), then the components assembled again (${r.assembled.method}).`,
    '',
    "A component answers among its task's classes, so it is compared with the base model restricted to them (base k-way); base N-way is the base's arg-max over all classes on the same images.",
    '',
    '| model | classes | base N-way | base k-way | accuracy | parameters | MFLOPs/image |',
    '|---|---|---|---|---|---|---|',
    ...r.components.map(
      (c) =>
        `| component | ${c.task.join(',')} | ${pct(c.baseAccuracy)} | ${pct(c.baseKWay)} | ${pct(c.accuracy)} (k-way) | ${n(c.parameters)} | ${mf(c.flopsPerImage)} |`,
    ),
    `| assembled, unscaled | ${r.components.flatMap((c) => c.task).join(',')} | ${pct(r.assembled.baseAccuracy)} | - | ${pct(r.assembled.unscaled)} | ${n(r.assembled.parameters)} | ${mf(r.assembled.flopsPerImage)} |`,
    `| assembled, scaled | ${r.components.flatMap((c) => c.task).join(',')} | ${pct(r.assembled.baseAccuracy)} | - | ${pct(r.assembled.scaled)} | ${n(r.assembled.parameters)} | ${mf(r.assembled.flopsPerImage)} |`,
    '',
    `Model LEGO section time: ${r.seconds.toFixed(1)} s.`,
    '',
  ].join('\n');
}
