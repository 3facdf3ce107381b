/**
 * Disassembly: a classifier and a task (a set of its classes) in, a smaller standalone
 * component for that task out (spec sections 1-4): representative samples, streamed
 * contributions, masks by backward propagation, structural pruning, metadata.
 *
 * @example
 *   const train = await openDataset('fashion-mnist', 'train');
 *   const c = await disassemble(openModel('vgg.onnx'), train, { task: [0, 1, 2], samplesPerClass: 50 });
 *   saveModel(c.model, 'vgg-0-2.onnx'); // 3 outputs, labelled with classes 0, 1, 2
 */
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { mapOutputs } from '../runtime/labels.js';
import { resolveNormalization } from '../runtime/normalization.js';
import { ModelSession } from '../runtime/session.js';
import { getArch, getProvenance, setArch, setLabels, setProvenance } from '../onnx/metadata.js';
import { validateModel } from '../onnx/validate.js';
import { modelHash } from '../autodiff/train.js';
import { reestimateBatchNorm } from '../autodiff/batchnorm-stats.js';
import { subsetIndices } from '../data/classes.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { warn } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import { analyzeChannels, type ChannelGraph, type SpaceMasks } from './channels.js';
import { selectSamples } from './samples.js';
import { accumulateContributions } from './contributions.js';
import { computeMasks } from './masks.js';
import { pruneModel } from './prune.js';
import { DEFAULT_BATCHNORM_SAMPLES, DEFAULT_SAMPLES_PER_CLASS, DEFAULT_THRESHOLDS, type Component, type DisassembleOptions, type Masks, type Thresholds } from './types.js';

/** Thresholds from options, defaults filled in and checked. */
export function resolveThresholds(opts: Partial<Thresholds>): Thresholds {
  const t: Thresholds = { ...DEFAULT_THRESHOLDS };
  for (const key of Object.keys(DEFAULT_THRESHOLDS) as (keyof Thresholds)[]) {
    const v = opts[key];
    if (v === undefined) continue;
    if (!Number.isFinite(v) || v < 0 || v > 1) throw new UserError(`threshold ${key} must be a number in [0, 1], got ${v}`);
    t[key] = v;
  }
  return t;
}

/**
 * The output index of each task class; a UserError naming the classes the model does
 * not have.
 */
export function taskOutputs(model: Model, ds: Dataset, task: readonly number[]): number[] {
  if (task.length === 0) throw new UserError('the task names no classes');
  if (new Set(task).size !== task.length) throw new UserError(`the task names a class twice: ${task.join(',')}`);
  const map = mapOutputs(model, ds);
  const known = Array.from(map.classOf).filter((c) => c >= 0);
  return task.map((c) => {
    const o = Array.from(map.classOf).indexOf(c);
    if (!Number.isInteger(c) || o < 0) {
      throw new UserError(`task class ${c} is not one of the model's classes: it classifies classes ${known.join(',')} of ${ds.name}`);
    }
    return o;
  });
}

/** Everything disassembly decides before pruning; tests compare the pruned model with maskedOriginal(plan.cg, plan.keep). */
export interface DisassemblyPlan {
  cg: ChannelGraph;
  keep: SpaceMasks;
  /** parent output indices the component keeps, ascending */
  keptOutputs: number[];
  masks: Masks;
  thresholds: Thresholds;
  warnings: string[];
  /** dataset indices of the representative samples per class, most confident first */
  samples: Record<string, number[]>;
  counts: Record<string, number>;
}

/** Samples, contributions and masks: the decisions of a disassembly, without pruning. */
export async function planDisassembly(model: Model, train: Dataset, opts: DisassembleOptions): Promise<DisassemblyPlan> {
  const thresholds = resolveThresholds(opts);
  const outputs = taskOutputs(model, train, opts.task);
  // Refuse operators the pruner does not understand before reading any data.
  const cg = analyzeChannels(model);
  const norm = resolveNormalization(model, train.shape[0], { ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}) });
  const label = opts.label ?? 'disassemble';
  const common = { normalization: norm.normalization, ...(opts.batchSize ? { batchSize: opts.batchSize } : {}), ...(opts.session ? { session: opts.session } : {}) };
  const selection = await selectSamples(model, train, {
    ...common, task: opts.task, outputs, samplesPerClass: opts.samplesPerClass ?? DEFAULT_SAMPLES_PER_CLASS,
    ...(opts.unbalanced ? { unbalanced: opts.unbalanced } : {}), ...(label ? { label: `${label}: samples` } : {}),
  });
  const warnings: string[] = [];
  const pairs: [number, number][] = [];
  const counts: Record<string, number> = {};
  const samples: Record<string, number[]> = {};
  for (const c of opts.task) {
    const chosen = selection.perClass.get(c)!;
    counts[String(c)] = chosen.length;
    samples[String(c)] = chosen.map((s) => s.index);
    if (chosen.length < selection.wanted.get(c)!) warnings.push(`class ${c}: only ${chosen.length} training images, fewer than the ${selection.wanted.get(c)} samples asked for`);
    for (const s of chosen) pairs.push([s.index, c]);
  }
  // Ascending dataset order: the accumulation order (and so the sums) do not depend on the batch size.
  pairs.sort((a, b) => a[0] - b[0]);
  const contributions = await accumulateContributions(cg, train, pairs, { ...common, classes: opts.task, ...(label ? { label: `${label}: contributions` } : {}) });
  const { masks, keep, keptOutputs, warnings: maskWarnings } = computeMasks(cg, contributions, { task: opts.task, outputs, thresholds, samples: counts });
  warnings.push(...maskWarnings);
  return { cg, keep, keptOutputs, masks, thresholds, warnings, samples, counts };
}

export async function disassemble(model: Model, train: Dataset, opts: DisassembleOptions): Promise<Component> {
  const plan = await planDisassembly(model, train, opts);
  const { keptOutputs, thresholds, counts } = plan;
  const bn = await reestimateComponentBatchNorm(pruneModel(plan.cg, plan.keep), train, opts);
  const pruned = bn.model;
  const labels = mapOutputs(model, train).labels;
  setLabels(pruned, keptOutputs.map((o) => labels[o]!));
  const arch = getArch(model);
  if (arch) setArch(pruned, { ...arch, component: true });
  const parentProvenance = getProvenance(model);
  setProvenance(pruned, {
    operation: 'disassembled',
    parents: [opts.parentHash ?? modelHash(model)],
    data: train.source,
    dataset: train.name,
    classes: keptOutputs.map((o) => labels[o]!.class),
    thresholds,
    samplesPerClass: counts,
    ...(opts.unbalanced ? { unbalanced: opts.unbalanced } : {}),
    batchNorm: bn.samples > 0 ? { statistics: 'reestimated', samples: bn.samples, seed: opts.seed ?? 0 } : { statistics: 'parent' },
    ...(parentProvenance ? { parentOperation: parentProvenance.operation } : {}),
  });
  pruned.graph.name = `${model.graph.name}-component`;
  await checkRuns(pruned, train.shape);
  for (const w of plan.warnings) warn(w);
  return { model: pruned, task: keptOutputs.map((o) => labels[o]!.class), masks: plan.masks, warnings: plan.warnings, samples: plan.samples };
}

/**
 * Pruning changes what each BatchNorm sees (fewer input channels upstream, only the
 * task's classes), so its parent's running statistics no longer describe it; the
 * component's own statistics come from the task's training images, labels unused.
 */
async function reestimateComponentBatchNorm(component: Model, train: Dataset, opts: DisassembleOptions): Promise<{ model: Model; samples: number }> {
  const samples = opts.batchNormSamples ?? DEFAULT_BATCHNORM_SAMPLES;
  if (!Number.isInteger(samples) || samples < 0) throw new UserError(`BatchNorm samples must be a whole number >= 0 (0 keeps the parent's statistics), got ${samples}`);
  if (samples === 0 || !component.graph.nodes.some((n) => n.opType === 'BatchNormalization')) return { model: component, samples: 0 };
  const label = opts.label ?? 'disassemble';
  const r = await reestimateBatchNorm(component, train, {
    ...opts.session, indices: subsetIndices(train, opts.task), samples: Math.max(2, samples), seed: opts.seed ?? 0,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}), ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}),
    ...(label ? { label: `${label}: BatchNorm statistics` } : {}),
  });
  return { model: r.model, samples: r.samples };
}

/** The component must be a valid model that ONNX Runtime runs: a bug here must never produce a file. */
async function checkRuns(model: Model, shape: readonly number[]): Promise<void> {
  try {
    validateModel(model);
    const s = await ModelSession.create(model, { threads: 1 });
    try {
      const n = shape[0]! * shape[1]! * shape[2]!;
      await s.run({ [model.graph.inputs[0]!.name]: { dims: [1, ...shape], data: new Float32Array(n) } });
    } finally {
      await s.release();
    }
  } catch (e) {
    throw new Error(`disassembly produced a model that does not run (a modelsmith bug): ${(e as Error).message}`, { cause: e });
  }
}

/** Writes masks as JSON (atomically). */
export function saveMasks(masks: Masks, path: string): void {
  writeJsonAtomic(path, masks);
}
