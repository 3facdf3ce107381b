/**
 * The Model LEGO experiments (docs/lego-method.md §7) as one resumable run: disassembly
 * (base vs component accuracy), assembly (with/without scaling and fine-tuning),
 * mismatch (a component on its own task vs other tasks of the same size), unbalanced
 * vs balanced representative samples, sizes, and an alpha/beta sweep. Every row is
 * written to <outDir>/experiment.json as soon as it is measured, so an interrupted run
 * continues where it stopped (rows are keyed by their settings); report.md is
 * rewritten after each row.
 *
 * @example
 *   const r = await runLegoExperiment({ model: 'vgg.onnx', model2: 'vgg-s2.onnx', data: 'fashion-mnist', outDir: 'runs/lego' });
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../onnx/types.js';
import { openModel } from '../onnx/open.js';
import { saveModel } from '../onnx/proto.js';
import { modelStats } from '../onnx/stats.js';
import { openDataset } from '../data/resolve.js';
import { evaluate } from '../runtime/evaluate.js';
import type { SessionOptions } from '../runtime/session.js';
import { fileHash } from '../onnx/metadata.js';
import { disassemble } from './disassemble.js';
import { sampleCounts } from './samples.js';
import { mismatch, scoreTask, type Mismatch } from './score.js';
import { resolveNormalization } from '../runtime/normalization.js';
import { DEFAULT_THRESHOLDS, type DisassembleOptions, type Thresholds } from './types.js';
import { assemble } from './assemble.js';
import { finetuneAssembled } from './finetune.js';
import { writeFileAtomic } from '../util/atomic.js';
import { writeResultJson } from '../util/provenance.js';
import { info } from '../util/progress.js';
import { pct } from '../util/format.js';
import { OptionError } from '../util/errors.js';

export interface ExperimentOptions {
  model: string;
  /** a second model (another seed or width) for the assembly table */
  model2?: string;
  data: string;
  outDir: string;
  /** disassembly / mismatch tasks (default {0}, {0-2}, {3-9}, {1,5,7}) */
  tasks?: number[][];
  /** assembly pairs: task of model, task of model2 (or of model again) (default 0-4 + 5-9, 0-2 + 3-9) */
  pairs?: [number[], number[]][];
  samplesPerClass?: number;
  /** unbalanced sample counts per class [lo, hi] (default 1x..3x samplesPerClass) */
  unbalanced?: [number, number];
  finetuneEpochs?: number;
  /** alpha/beta grid for the sweep (applied to conv; linear gets +0.1); [] skips it */
  sweep?: { alpha: number; beta: number }[];
  sweepTask?: number[];
  scaleSamplesPerClass?: number;
  seed?: number;
  batchSize?: number;
  resume?: boolean;
  session?: SessionOptions;
  /** compute only the rows whose key this accepts (a queue worker runs one row; src/queue/lego.ts) */
  select?: (key: string) => boolean;
  /** input normalisation for models without normalisation metadata (components carry it on) */
  mean?: number[];
  std?: number[];
  /** disassembly settings other than the task, samples and thresholds (recalibration, flatten, ...) */
  disassembly?: Pick<
    DisassembleOptions,
    'recalibration' | 'recalibrationSamples' | 'flatten' | 'ranking' | 'validationPerClass' | 'classDrop' | 'maxDrop' | 'guard'
  >;
}

export interface DisassemblyRow {
  key: string;
  model: string;
  task: number[];
  /** base N-way and k-way accuracy on the task's test images; the component's (k-way) */
  baseAccuracy: number;
  baseKWay: number;
  componentAccuracy: number;
  /** classes whose masks were relaxed after collapsing on held-out training images */
  relaxed: number[];
  samples: number;
  baseParameters: number;
  componentParameters: number;
  baseFlops: number;
  componentFlops: number;
  warnings: number;
  seconds: number;
}
export interface AssemblyRow {
  key: string;
  tasks: [number[], number[]];
  models: [string, string];
  baseAccuracy: number[];
  unscaled: number;
  scaled: number;
  finetuned: number | null;
  finetunedUnscaled: number | null;
  finetuneEpochs: number;
  method: string;
  parameters: number;
  flops: number;
  seconds: number;
}
export interface MismatchRow extends Mismatch {
  key: string;
}
export interface UnbalancedRow {
  key: string;
  task: number[];
  counts: Record<string, number>;
  balanced: number;
  unbalanced: number;
  perClassBalanced: Record<string, number>;
  perClassUnbalanced: Record<string, number>;
}
export interface SweepRow {
  key: string;
  task: number[];
  thresholds: Thresholds;
  accuracy: number;
  parameters: number;
  flops: number;
}

export interface ExperimentResult {
  model: string;
  model2: string | null;
  data: string;
  samplesPerClass: number;
  disassembly: DisassemblyRow[];
  assembly: AssemblyRow[];
  mismatch: MismatchRow[];
  unbalanced: UnbalancedRow[];
  sweep: SweepRow[];
}

export const DEFAULT_TASKS = [[0], [0, 1, 2], [3, 4, 5, 6, 7, 8, 9], [1, 5, 7]];
export const DEFAULT_PAIRS: [number[], number[]][] = [
  [
    [0, 1, 2, 3, 4],
    [5, 6, 7, 8, 9],
  ],
  [
    [0, 1, 2],
    [3, 4, 5, 6, 7, 8, 9],
  ],
];
export const DEFAULT_SWEEP = [0.1, 0.3, 0.5, 0.7].flatMap((alpha) => [0.1, 0.2, 0.4].map((beta) => ({ alpha, beta })));

const taskName = (t: readonly number[]): string => {
  const s = [...t].sort((a, b) => a - b);
  const contiguous = s.every((c, i) => i === 0 || c === s[i - 1]! + 1);
  return contiguous && s.length > 2 ? `${s[0]}-${s[s.length - 1]}` : s.join(',');
};

/**
 * The Model LEGO experiment: disassembles every task, assembles the pairs, sweeps the thresholds, writes tables.
 *
 * @example
 *   const r = await runLegoExperiment({ model: 'r.onnx', data: 'fashion-mnist', outDir: 'runs/lego', tasks: [[0, 1], [2, 3]], pairs: [[[0, 1], [2, 3]]] });
 */
export async function runLegoExperiment(opts: ExperimentOptions): Promise<ExperimentResult> {
  checkExperimentOptions(opts);
  const skip = (key: string): boolean => opts.select !== undefined && !opts.select(key);
  const session = opts.session ?? {};
  const base = openModel(opts.model);
  const base2 = opts.model2 ? openModel(opts.model2) : undefined;
  const train = await openDataset(opts.data, 'train');
  const test = await openDataset(opts.data, 'test');
  const spc = opts.samplesPerClass ?? 50;
  const file = join(opts.outDir, 'experiment.json');
  const result: ExperimentResult =
    opts.resume && existsSync(file)
      ? loadResult(file)
      : {
          model: opts.model,
          model2: opts.model2 ?? null,
          data: test.source,
          samplesPerClass: spc,
          disassembly: [],
          assembly: [],
          mismatch: [],
          unbalanced: [],
          sweep: [],
        };
  const save = (): void => {
    writeResultJson(file, result);
    writeFileAtomic(join(opts.outDir, 'report.md'), experimentMarkdown(result));
  };
  const hashes = new Map<string, string>([
    [opts.model, fileHash(opts.model)],
    ...(opts.model2 ? [[opts.model2, fileHash(opts.model2)] as [string, string]] : []),
  ]);
  const baseStats = modelStats(base);
  const components = new Map<string, Model>();
  const warnings = new Map<string, number>();
  const relaxedOf = new Map<string, number[]>();
  const norm = { ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}) };
  type CutOptions = Partial<Thresholds> & { unbalanced?: { lo: number; hi: number; seed: number }; validationPerClass?: number };
  const cut = async (
    which: Model,
    name: string,
    task: number[],
    extra: CutOptions = {},
  ): Promise<{ model: Model; warnings: string[]; relaxed: number[]; seconds: number }> => {
    const t0 = Date.now();
    const c = await disassemble(which, train, {
      task,
      samplesPerClass: spc,
      session,
      parentHash: hashes.get(name)!,
      ...norm,
      ...opts.disassembly,
      ...extra,
      ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    });
    return { model: c.model, warnings: c.warnings, relaxed: c.validation?.relaxed.map((r) => r.class) ?? [], seconds: (Date.now() - t0) / 1000 };
  };
  const component = async (which: Model, name: string, task: number[]): Promise<Model> => {
    const key = `${name}:${taskName(task)}`;
    let m = components.get(key);
    if (!m) {
      const f = join(opts.outDir, 'components', `${name === opts.model ? 'm1' : 'm2'}-${taskName(task).replace(/,/g, '_')}.onnx`);
      if (opts.resume && existsSync(f)) m = openModel(f);
      else {
        const c = await cut(which, name, task);
        m = c.model;
        warnings.set(key, c.warnings.length);
        relaxedOf.set(key, c.relaxed);
      }
      saveModel(m, f);
      components.set(key, m);
    }
    return m;
  };
  const acc = async (m: Model, classes: number[]): Promise<number> => (await evaluate(m, test, { ...session, classes, ...norm })).accuracy;
  const normalization = (m: Model) => resolveNormalization(m, test.shape[0], norm).normalization;

  // Table 1 (+ sizes): disassembly
  for (const task of opts.tasks ?? DEFAULT_TASKS) {
    const key = `dis:${taskName(task)}:${spc}`;
    if (result.disassembly.some((r) => r.key === key) || skip(key)) continue;
    info(`lego-experiment: disassembly of task ${taskName(task)}`);
    const t0 = Date.now();
    const c = await component(base, opts.model, task);
    const s = modelStats(c);
    const b = await scoreTask(base, test, { task, session, normalization: normalization(base) });
    result.disassembly.push({
      key,
      model: opts.model,
      task,
      baseAccuracy: b.nWay.accuracy,
      baseKWay: b.kWay.accuracy,
      componentAccuracy: await acc(c, task),
      relaxed: relaxedOf.get(`${opts.model}:${taskName(task)}`) ?? [],
      samples: spc,
      baseParameters: baseStats.parameters,
      componentParameters: s.parameters,
      baseFlops: baseStats.flopsPerImage,
      componentFlops: s.flopsPerImage,
      warnings: warnings.get(`${opts.model}:${taskName(task)}`) ?? 0,
      seconds: (Date.now() - t0) / 1000,
    });
    save();
  }

  // Table 3: mismatch, on the same components
  for (const task of opts.tasks ?? DEFAULT_TASKS) {
    const key = `mis:${taskName(task)}:${spc}`;
    if (result.mismatch.some((r) => r.key === key) || task.length >= test.classes || skip(key)) continue;
    const c = await component(base, opts.model, task);
    result.mismatch.push({ key, ...(await mismatch(c, test, { task, session, normalization: normalization(c) })) });
    save();
  }

  // Table 2: assembly, without/with scaling and fine-tuning
  const epochs = opts.finetuneEpochs ?? 2;
  for (const [ta, tb] of opts.pairs ?? DEFAULT_PAIRS) {
    const second = opts.model2 ?? opts.model;
    const key = `asm:${taskName(ta)}+${taskName(tb)}:${second === opts.model ? 'same' : 'two'}:${epochs}`;
    if (result.assembly.some((r) => r.key === key) || skip(key)) continue;
    info(`lego-experiment: assembly of ${taskName(ta)} + ${taskName(tb)}`);
    const t0 = Date.now();
    const a = await component(base, opts.model, ta);
    const b = await component(base2 ?? base, second, tb);
    const union = [...new Set([...ta, ...tb])].sort((x, y) => x - y);
    const parts = [
      { model: a, file: `${opts.model}[${taskName(ta)}]` },
      { model: b, file: `${second}[${taskName(tb)}]` },
    ];
    const plain = await assemble(parts, { session, normalization: norm });
    const scaled = await assemble(parts, {
      session,
      normalization: norm,
      scaleData: [train],
      ...(opts.scaleSamplesPerClass ? { scaleSamplesPerClass: opts.scaleSamplesPerClass } : {}),
      seed: opts.seed ?? 0,
    });
    const f = join(opts.outDir, 'assembled', `${key.replace(/[:,+]/g, '_')}.onnx`);
    saveModel(scaled.model, f);
    let finetuned: number | null = null;
    let finetunedUnscaled: number | null = null;
    if (epochs > 0) {
      const tune = async (m: Model, suffix: string): Promise<number> => {
        const ft = await finetuneAssembled(m, [train], {
          epochs,
          output: f.replace(/\.onnx$/, `.${suffix}.onnx`),
          seed: opts.seed ?? 0,
          session,
          ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
        });
        return acc(ft.model, union);
      };
      finetuned = await tune(scaled.model, 'finetuned');
      finetunedUnscaled = await tune(plain.model, 'unscaled.finetuned');
    }
    const s = modelStats(scaled.model);
    result.assembly.push({
      key,
      tasks: [ta, tb],
      models: [opts.model, second],
      baseAccuracy: [await acc(base, union), ...(base2 ? [await acc(base2, union)] : [])],
      unscaled: await acc(plain.model, union),
      scaled: await acc(scaled.model, union),
      finetuned,
      finetunedUnscaled,
      finetuneEpochs: epochs,
      method: scaled.method,
      parameters: s.parameters,
      flops: s.flopsPerImage,
      seconds: (Date.now() - t0) / 1000,
    });
    save();
  }

  // Table 4: unbalanced vs balanced representative samples
  const [lo, hi] = opts.unbalanced ?? [spc, 3 * spc];
  for (const task of (opts.tasks ?? DEFAULT_TASKS).filter((t) => t.length > 1)) {
    const key = `unb:${taskName(task)}:${spc}:${lo}-${hi}`;
    if (result.unbalanced.some((r) => r.key === key) || skip(key)) continue;
    info(`lego-experiment: unbalanced samples for task ${taskName(task)}`);
    const balanced = await component(base, opts.model, task);
    const u = await cut(base, opts.model, task, { unbalanced: { lo, hi, seed: opts.seed ?? 0 } });
    const eb = await evaluate(balanced, test, { ...session, classes: task, ...norm });
    const eu = await evaluate(u.model, test, { ...session, classes: task, ...norm });
    const counts = unbalancedCounts(task, lo, hi, opts.seed ?? 0);
    result.unbalanced.push({
      key,
      task,
      counts,
      balanced: eb.accuracy,
      unbalanced: eu.accuracy,
      perClassBalanced: eb.perClass,
      perClassUnbalanced: eu.perClass,
    });
    save();
  }

  // Sweep: accuracy vs size over alpha/beta
  const sweepTask = opts.sweepTask ?? [0, 1, 2];
  for (const { alpha, beta } of opts.sweep ?? DEFAULT_SWEEP) {
    const thresholds: Thresholds = { alphaConv: alpha, betaConv: beta, alphaLinear: Math.min(0.99, alpha + 0.1), betaLinear: Math.min(0.99, beta + 0.1) };
    const key = `sweep:${taskName(sweepTask)}:${spc}:${alpha}:${beta}`;
    if (result.sweep.some((r) => r.key === key) || skip(key)) continue;
    info(`lego-experiment: sweep alpha ${alpha}, beta ${beta}`);
    // the raw effect of the thresholds: no held-out class check relaxing collapsed classes
    const c = await cut(base, opts.model, sweepTask, { ...thresholds, validationPerClass: 0 });
    const s = modelStats(c.model);
    result.sweep.push({ key, task: sweepTask, thresholds, accuracy: await acc(c.model, sweepTask), parameters: s.parameters, flops: s.flopsPerImage });
    save();
  }
  save();
  return result;
}

/** The checks of an experiment's options, before any work (runLegoExperiment and the queue's coordinator and workers call it). */
export function checkExperimentOptions(o: ExperimentOptions): void {
  const positive = (v: number | undefined, option: string): void => {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new OptionError((n) => `${n(option)} expects a positive integer, got ${v}`);
  };
  const classes = (t: readonly number[], option: string): void => {
    if (!t.length || !t.every((c) => Number.isInteger(c) && c >= 0 && c < 1000) || new Set(t).size !== t.length) {
      throw new OptionError((n) => `${n(option)} expects lists of distinct class numbers 0..999, got "${t.join(',')}"`);
    }
  };
  positive(o.samplesPerClass, 'samplesPerClass');
  positive(o.scaleSamplesPerClass, 'scaleSamplesPerClass');
  positive(o.batchSize, 'batchSize');
  if (o.finetuneEpochs !== undefined && !Number.isInteger(o.finetuneEpochs))
    throw new OptionError((n) => `${n('finetuneEpochs')} expects an integer, got ${o.finetuneEpochs}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new OptionError((n) => `${n('seed')} expects an integer, got ${o.seed}`);
  for (const t of o.tasks ?? []) classes(t, 'tasks');
  for (const [a, b] of o.pairs ?? []) {
    classes(a, 'pairs');
    classes(b, 'pairs');
  }
  if (o.sweepTask) classes(o.sweepTask, 'sweepTask');
  if (o.unbalanced && !(Number.isInteger(o.unbalanced[0]) && Number.isInteger(o.unbalanced[1]) && o.unbalanced[0] >= 1 && o.unbalanced[1] >= o.unbalanced[0])) {
    const got = o.unbalanced.join('-');
    throw new OptionError((n) => `${n('unbalanced')} expects lo-hi with 1 <= lo <= hi, e.g. 50-150, got "${got}"`);
  }
  if ((o.sweep ?? []).some((s) => !(s.alpha >= 0 && s.alpha < 1 && s.beta >= 0 && s.beta < 1)))
    throw new OptionError((n) => `${n('sweep')} expects alphas and betas in [0, 1)`);
}

function unbalancedCounts(task: number[], lo: number, hi: number, seed: number): Record<string, number> {
  return Object.fromEntries([...sampleCounts(task, lo, { lo, hi, seed })].map(([c, n]) => [String(c), n]));
}

function loadResult(file: string): ExperimentResult {
  try {
    // the provenance block is the earlier run's; this run's is attached when the file is written again
    const { provenance: _, ...r } = JSON.parse(readFileSync(file, 'utf8')) as ExperimentResult & { provenance?: unknown };
    // rows written before the unscaled fine-tuning column, the base k-way column and the
    // per-class mismatch measure existed are measured again
    r.assembly = r.assembly.filter((a) => a.finetunedUnscaled !== undefined);
    r.disassembly = r.disassembly.filter((d) => d.baseKWay !== undefined);
    r.mismatch = r.mismatch.filter((m) => m.others && typeof m.others === 'object' && 'share' in m.others);
    return r;
  } catch (e) {
    throw new OptionError(
      (o) => `cannot resume: ${file} is not a readable experiment result (${(e as Error).message}); remove it or run without ${o('resume')}`,
    );
  }
}

/** The tables as Markdown. */
export function experimentMarkdown(r: ExperimentResult): string {
  const n = (x: number): string => x.toLocaleString('en-US');
  const signed = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
  const m = (x: number): string => (x / 1e6).toFixed(2);
  const lines = [
    '# Model LEGO experiments',
    '',
    `Model: ${r.model}${r.model2 ? `; second model: ${r.model2}` : ''}`,
    '',
    `Test data: ${r.data}`,
    '',
    `Representative samples: ${r.samplesPerClass} per class (training split). Thresholds: conv alpha ${DEFAULT_THRESHOLDS.alphaConv} beta ${DEFAULT_THRESHOLDS.betaConv}, linear alpha ${DEFAULT_THRESHOLDS.alphaLinear} beta ${DEFAULT_THRESHOLDS.betaLinear} unless swept.`,
    '',
    '## Disassembly',
    '',
    "Accuracy on the task's test images. Base N-way: the full model's arg-max over all its classes; base k-way: over the task's classes only (its logits sliced to the task), which is what a component answers. The change is the component against base k-way.",
    '',
    '| task | base N-way | base k-way | component | change vs k-way | relaxed classes | base params | component params | base MFLOPs | component MFLOPs | seconds |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...r.disassembly.map(
      (d) =>
        `| ${taskName(d.task)} | ${pct(d.baseAccuracy)} | ${pct(d.baseKWay)} | ${pct(d.componentAccuracy)} | ${signed(d.componentAccuracy - d.baseKWay)} | ${d.relaxed.length ? d.relaxed.join(',') : '-'} | ${n(d.baseParameters)} | ${n(d.componentParameters)} | ${m(d.baseFlops)} | ${m(d.componentFlops)} | ${d.seconds.toFixed(1)} |`,
    ),
    '',
    '## Assembly',
    '',
    "Accuracy on the union of the two tasks' test images. Base: each parent model's N-way accuracy on those images. Parameters and FLOPs of a block-diagonal model count its zero blocks (it runs dense).",
    '',
    '| tasks | method | base | unscaled | scaled | unscaled + fine-tuned | scaled + fine-tuned | params | MFLOPs |',
    '|---|---|---|---|---|---|---|---|---|',
    ...r.assembly.map(
      (a) =>
        `| ${taskName(a.tasks[0])} + ${taskName(a.tasks[1])}${a.models[0] === a.models[1] ? ' (one model)' : ' (two models)'} | ${a.method} | ${a.baseAccuracy.map(pct).join(' / ')} | ${pct(a.unscaled)} | ${pct(a.scaled)} | ${a.finetunedUnscaled === null || a.finetunedUnscaled === undefined ? '-' : `${pct(a.finetunedUnscaled)} (${a.finetuneEpochs} ep.)`} | ${a.finetuned === null ? '-' : `${pct(a.finetuned)} (${a.finetuneEpochs} ep.)`} | ${n(a.parameters)} | ${m(a.flops)} |`,
    ),
    '',
    '## Mismatch',
    '',
    "Each component on its own task's test images (k-way accuracy, mean max softmax) and on the test images of every class outside its task, where a k-way component cannot be right: which of its classes it answers (share of those images, summing to 100%) and how confident it is (mean max softmax). A task-specific component is less confident outside its task.",
    '',
    '| task | own accuracy | own mean max softmax | other images | share of predictions per class | other mean max softmax |',
    '|---|---|---|---|---|---|',
    ...r.mismatch.map(
      (x) =>
        `| ${taskName(x.task)} | ${pct(x.own.accuracy)} | ${x.own.meanMaxSoftmax.toFixed(3)} | ${x.others.samples} | ${Object.entries(x.others.share)
          .map(([c, v]) => `${c}:${(100 * v).toFixed(1)}%`)
          .join(' ')} | ${x.others.samples ? x.others.meanMaxSoftmax.toFixed(3) : '-'} |`,
    ),
    '',
    '## Unbalanced representative samples',
    '',
    '| task | samples per class (unbalanced) | balanced | unbalanced | per class balanced | per class unbalanced |',
    '|---|---|---|---|---|---|',
    ...r.unbalanced.map(
      (u) =>
        `| ${taskName(u.task)} | ${Object.entries(u.counts)
          .map(([c, k]) => `${c}:${k}`)
          .join(' ')} | ${pct(u.balanced)} | ${pct(u.unbalanced)} | ${Object.entries(u.perClassBalanced)
          .map(([c, a]) => `${c}:${(a * 100).toFixed(0)}`)
          .join(' ')} | ${Object.entries(u.perClassUnbalanced)
          .map(([c, a]) => `${c}:${(a * 100).toFixed(0)}`)
          .join(' ')} |`,
    ),
    '',
    // no sweep rows (--no-sweep): no empty table
    ...(r.sweep.length
      ? [
          '## Threshold sweep',
          '',
          "Linear thresholds are the conv ones + 0.1; no held-out class check (nothing relaxed), so each row is its thresholds' own effect.",
          '',
          '| task | alpha | beta | accuracy | params | MFLOPs |',
          '|---|---|---|---|---|---|',
          ...r.sweep.map(
            (s) => `| ${taskName(s.task)} | ${s.thresholds.alphaConv} | ${s.thresholds.betaConv} | ${pct(s.accuracy)} | ${n(s.parameters)} | ${m(s.flops)} |`,
          ),
          '',
        ]
      : []),
  ];
  return lines.join('\n');
}
