/**
 * Disassembly: a classifier and a task (a set of its classes) in, a smaller standalone
 * component for that task out (docs/lego-method.md §1-§4): representative samples, streamed
 * contributions, masks by backward propagation, structural pruning, metadata.
 *
 * @example
 *   const train = await openDataset('fashion-mnist', 'train');
 *   const c = await disassemble(openModel('vgg.onnx'), train, { task: [0, 1, 2], samplesPerClass: 50 });
 *   saveModel(c.model, 'vgg-0-2.onnx'); // 3 outputs, labelled with classes 0, 1, 2
 */
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { taskOutputs, type TaskOutputs } from './task.js';
import { resolveNormalization, type ResolvedNormalization } from '../runtime/normalization.js';
import { ModelSession } from '../runtime/session.js';
import { getArch, getProvenance, modelHash, setArch, setInputSpec, setLabels, setProvenance } from '../onnx/metadata.js';
import { validateModel } from '../onnx/validate.js';
import { trainableParameterCount } from '../onnx/parameters.js';
import { reestimateBatchNorm } from '../autodiff/batchnorm-stats.js';
import { subsetIndices } from '../data/classes.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { Rng, hashSeed } from '../util/random.js';
import { pct } from '../util/format.js';
import { info, warn } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import { oneOf } from '../util/choice.js';
import { analyzeChannels, indicesOf, maskOf, type ChannelGraph, type SpaceMasks } from './channels.js';
import { SAMPLE_RANKINGS, selectSamples } from './samples.js';
import { accumulateContributions, type LayerContributions } from './contributions.js';
import { computeMasks, FLATTEN_MODES, type FlattenMode, type MaskResult } from './masks.js';
import { pruneModel } from './prune.js';
import { layerOutputStatistics, recalibrateAffine, RECALIBRATION_MODES, type LayoutOf, type RecalibrationTarget } from './recalibrate.js';
import { scoreTask, type TaskScore } from './score.js';
import {
  DEFAULT_ACCURACY_GUARD,
  DEFAULT_CLASS_DROP,
  DEFAULT_FLATTEN,
  DEFAULT_RECALIBRATION_SAMPLES,
  DEFAULT_SAMPLES_PER_CLASS,
  DEFAULT_THRESHOLDS,
  DEFAULT_VALIDATION_PER_CLASS,
  type Component,
  type DisassembleOptions,
  type Masks,
  type RecalibrationReport,
  type RelaxedClass,
  type SearchReport,
  type Thresholds,
  type ValidationReport,
} from './types.js';

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

/** Everything disassembly decides before pruning; tests compare the pruned model with maskedOriginal(plan.cg, plan.keep). */
export interface DisassemblyPlan {
  cg: ChannelGraph;
  keep: SpaceMasks;
  /** parent output indices the component keeps, ascending */
  keptOutputs: number[];
  masks: Masks;
  thresholds: Thresholds;
  /** sample warnings, then the reference masks' warnings */
  warnings: string[];
  /** warnings about the representative samples alone */
  sampleWarnings: string[];
  /** dataset indices of the representative samples per class, most confident first */
  samples: Record<string, number[]>;
  counts: Record<string, number>;
  /** per-layer contributions: masks at other thresholds need no new pass over the data (masksAt) */
  contributions: Map<string, LayerContributions>;
  /** the task's classes and the model output of each */
  task: TaskOutputs;
  flatten: FlattenMode;
  normalization: ResolvedNormalization;
}

/** Samples, contributions and masks: the decisions of a disassembly, without pruning. */
export async function planDisassembly(model: Model, train: Dataset, opts: DisassembleOptions): Promise<DisassemblyPlan> {
  const thresholds = resolveThresholds(opts);
  const flatten = oneOf(opts.flatten ?? DEFAULT_FLATTEN, 'flatten mode', FLATTEN_MODES);
  const ranking = oneOf(opts.ranking ?? 'float32', 'sample ranking', SAMPLE_RANKINGS);
  const task = taskOutputs(model, train, opts.task);
  // Refuse operators the pruner does not understand before reading any data.
  const cg = analyzeChannels(model);
  // warns (once per model) when the model carries no normalisation and none is given
  const norm = resolveNormalization(
    model,
    train.shape[0],
    { ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}) },
    { file: opts.file ?? 'the model' },
  );
  const label = opts.label ?? 'disassemble';
  const common = {
    normalization: norm.normalization,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    ...(opts.session ? { session: opts.session } : {}),
  };
  const selection = await selectSamples(model, train, {
    ...common,
    task,
    samplesPerClass: opts.samplesPerClass ?? DEFAULT_SAMPLES_PER_CLASS,
    ranking,
    ...(opts.unbalanced ? { unbalanced: opts.unbalanced } : {}),
    ...(label ? { label: `${label}: samples` } : {}),
  });
  const warnings: string[] = [];
  const pairs: [number, number][] = [];
  const counts: Record<string, number> = {};
  const samples: Record<string, number[]> = {};
  for (const c of opts.task) {
    const chosen = selection.perClass.get(c)!;
    counts[String(c)] = chosen.length;
    samples[String(c)] = chosen.map((s) => s.index);
    if (chosen.length < selection.wanted.get(c)!)
      warnings.push(`class ${c}: only ${chosen.length} training images, fewer than the ${selection.wanted.get(c)} samples asked for`);
    for (const s of chosen) pairs.push([s.index, c]);
  }
  // Ascending dataset order: the accumulation order (and so the sums) do not depend on the batch size.
  pairs.sort((a, b) => a[0] - b[0]);
  const contributions = await accumulateContributions(cg, train, pairs, {
    ...common,
    classes: opts.task,
    ...(label ? { label: `${label}: contributions` } : {}),
  });
  const plan = { cg, thresholds, samples, counts, contributions, task, flatten, normalization: norm };
  const { masks, keep, keptOutputs, warnings: maskWarnings } = masksAt(plan, thresholds);
  return {
    cg,
    keep,
    keptOutputs,
    masks,
    thresholds,
    warnings: [...warnings, ...maskWarnings],
    sampleWarnings: warnings,
    samples,
    counts,
    contributions,
    task,
    flatten,
    normalization: norm,
  };
}

/** The masks of a plan at other thresholds (and per-class thresholds for relaxed classes). */
export function masksAt(
  plan: Pick<DisassemblyPlan, 'cg' | 'contributions' | 'task' | 'flatten' | 'counts'>,
  thresholds: Thresholds,
  classThresholds?: ReadonlyMap<number, Thresholds>,
): MaskResult {
  return computeMasks(plan.cg, plan.contributions, {
    task: plan.task,
    thresholds,
    samples: plan.counts,
    flatten: plan.flatten,
    ...(classThresholds ? { classThresholds } : {}),
  });
}

/**
 * A class has collapsed when its held-out k-way accuracy is more than `drop` below the
 * base's, or below half of it (for classes the base itself gets less than `drop` right).
 */
export function collapsed(accuracy: number, base: number, drop: number): boolean {
  return accuracy < Math.max(base - drop, base / 2);
}

/** Every reference threshold times `scale`, capped at 0.99 (the --max-drop search's one knob). */
export function scaledThresholds(t: Thresholds, scale: number): Thresholds {
  // rounded to 4 decimals: the thresholds are printed and recorded in the component's provenance
  const f = (v: number): number => Math.round(Math.min(0.99, Math.max(0, v * scale)) * 1e4) / 1e4;
  return { alphaConv: f(t.alphaConv), betaConv: f(t.betaConv), alphaLinear: f(t.alphaLinear), betaLinear: f(t.betaLinear) };
}

/** Below threshold 0 every input a kept output reads stays: the parent restricted to the task's outputs (the searches' last resort). */
const KEEP_ALL: Thresholds = { alphaConv: -1, betaConv: -1, alphaLinear: -1, betaLinear: -1 };

/** The lower of two thresholds, field by field. */
function minThresholds(a: Thresholds, b: Thresholds): Thresholds {
  return {
    alphaConv: Math.min(a.alphaConv, b.alphaConv),
    betaConv: Math.min(a.betaConv, b.betaConv),
    alphaLinear: Math.min(a.alphaLinear, b.alphaLinear),
    betaLinear: Math.min(a.betaLinear, b.betaLinear),
  };
}

/** How far a collapsed class's thresholds are relaxed, round by round (factors of its current thresholds' reference). */
const RELAX_STEPS = [0.5, 0.25, 0.1, 0];

/** The held-out split of the task's training images: validation images per class, and the rest (recalibration pool). */
export function heldOutSplit(
  train: Dataset,
  task: readonly number[],
  exclude: ReadonlySet<number>,
  perClass: number,
  seed: number,
): { validation: number[]; pool: number[]; short: number[] } {
  const validation: number[] = [];
  const pool: number[] = [];
  const short: number[] = [];
  for (const c of task) {
    const all = subsetIndices(train, [c]).filter((i) => !exclude.has(i));
    const order = new Rng(hashSeed(seed, `lego-holdout:${c}`)).shuffle(all);
    const n = Math.min(perClass, Math.floor(all.length / 5));
    if (perClass > 0 && n === 0) short.push(c);
    validation.push(...order.slice(0, n));
    pool.push(...order.slice(n));
  }
  validation.sort((a, b) => a - b);
  return { validation, short, pool: new Rng(hashSeed(seed, 'lego-recalibration')).shuffle(pool.sort((a, b) => a - b)) as number[] };
}

/**
 * The component of `model` for `opts.task`: representative samples, masks, pruning,
 * recalibration, the held-out class check and the accuracy guard (or the --max-drop
 * search); the component carries labels, normalisation and provenance.
 *
 * @example
 *   const c = await disassemble(openModel('vgg.onnx'), await openDataset('fashion-mnist', 'train'), { task: [0, 1, 2] });
 *   console.log(c.validation?.component.accuracy, c.recalibration.mode); // held-out k-way accuracy, 'affine'
 *   saveModel(c.model, 'vgg-0-2.onnx');
 */
export async function disassemble(model: Model, train: Dataset, opts: DisassembleOptions): Promise<Component> {
  const recalibration = oneOf(opts.recalibration ?? 'affine', 'recalibration', RECALIBRATION_MODES);
  const recalSamples = opts.recalibrationSamples ?? DEFAULT_RECALIBRATION_SAMPLES;
  if (!Number.isInteger(recalSamples) || recalSamples < 0)
    throw new UserError(`recalibration samples must be a whole number >= 0 (0 recalibrates nothing), got ${recalSamples}`);
  const perClass = opts.validationPerClass ?? DEFAULT_VALIDATION_PER_CLASS;
  if (!Number.isInteger(perClass) || perClass < 0) throw new UserError(`held-out images per class must be a whole number >= 0, got ${perClass}`);
  const classDrop = opts.classDrop ?? DEFAULT_CLASS_DROP;
  if (!(classDrop >= 0 && classDrop <= 1)) throw new UserError(`class drop must be a number in [0, 1], got ${classDrop}`);
  if (opts.maxDrop !== undefined && !(opts.maxDrop >= 0 && opts.maxDrop <= 1)) throw new UserError(`max drop must be a number in [0, 1], got ${opts.maxDrop}`);
  const guard = opts.guard ?? DEFAULT_ACCURACY_GUARD;
  if (!(guard >= 0 && guard <= 1)) throw new UserError(`accuracy guard must be a number in [0, 1], got ${guard}`);
  const plan = await planDisassembly(model, train, opts);
  const { cg, thresholds } = plan;
  const seed = opts.seed ?? 0;
  const label = opts.label ?? 'disassemble';
  const tag = (what: string): { label?: string } => (label ? { label: `${label}: ${what}` } : {});
  const norm = plan.normalization;
  const common = {
    normalization: norm.normalization,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    ...(opts.session ? { session: opts.session } : {}),
  };
  const labels = plan.task.model.labels;
  const representative = new Set(Object.values(plan.samples).flat());
  const wanted = perClass > 0 && opts.task.length > 1;
  const split = heldOutSplit(train, opts.task, representative, wanted ? perClass : 0, seed);
  // a class with too few training images left for a held-out fifth: no check (and no guard, no --max-drop)
  const checks = wanted && split.short.length === 0;
  const splitWarnings =
    wanted && !checks
      ? [
          `no held-out check: class${split.short.length > 1 ? 'es' : ''} ${split.short.join(',')} ha${split.short.length > 1 ? 've' : 's'} too few training images besides the representative samples (a fifth of them is held out)`,
        ]
      : [];
  if (wanted && !checks) split.pool.push(...split.validation.splice(0));
  const recalImages = split.pool.slice(0, recalSamples);
  const layoutOf = channelLayout(cg);
  const parentStats =
    recalibration === 'affine' && recalImages.length >= 2
      ? await layerOutputStatistics(
          model,
          cg.layers.map((l) => l.output),
          layoutOf,
          train,
          { ...common, indices: recalImages, ...tag('parent statistics') },
        )
      : undefined;
  const base = checks ? await scoreTask(model, train, { ...common, task: opts.task, indices: split.validation, ...tag('held-out check, base') }) : undefined;

  interface Candidate {
    model: Model;
    mr: MaskResult;
    recal: RecalibrationReport;
    val?: TaskScore;
    parameters: number;
    thresholds: Thresholds;
    classThresholds: Map<number, Thresholds>;
  }
  const build = async (t: Thresholds, classThresholds = new Map<number, Thresholds>()): Promise<Candidate> => {
    const mr = masksAt(plan, t, classThresholds);
    const pruned = pruneModel(cg, mr.keep);
    setLabels(
      pruned,
      mr.keptOutputs.map((o) => labels[o]!),
    );
    const recal = await recalibrate(pruned, mr.keep);
    const val = base ? await scoreTask(recal.model, train, { ...common, task: opts.task, indices: split.validation, ...tag('held-out check') }) : undefined;
    return {
      model: recal.model,
      mr,
      recal: recal.report,
      ...(val ? { val } : {}),
      parameters: trainableParameterCount(recal.model.graph),
      thresholds: t,
      classThresholds,
    };
  };
  const recalibrate = async (pruned: Model, keep: SpaceMasks): Promise<{ model: Model; report: RecalibrationReport }> => {
    const none = (skipped: string): { model: Model; report: RecalibrationReport } => ({
      model: pruned,
      report: { mode: recalibration, samples: 0, layers: [], batchNormLayers: 0, skipped },
    });
    if (recalibration === 'none') return none('recalibration none: the component is the masked parent');
    if (recalImages.length < 2)
      return none(recalSamples === 0 ? 'no recalibration images asked for' : 'fewer than 2 training images of the task left for recalibration');
    if (recalibration === 'batchnorm') {
      if (!pruned.graph.nodes.some((n) => n.opType === 'BatchNormalization')) return none('the model has no BatchNormalization nodes (folded export?)');
      const r = await reestimateBatchNorm(pruned, train, {
        ...opts.session,
        indices: recalImages,
        samples: recalImages.length,
        seed,
        ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
        ...(opts.mean ? { mean: opts.mean } : {}),
        ...(opts.std ? { std: opts.std } : {}),
        ...tag('BatchNorm statistics'),
      });
      return { model: r.model, report: { mode: 'batchnorm', samples: r.samples, layers: [], batchNormLayers: r.layers } };
    }
    const targets = changedLayers(cg, keep);
    if (targets.length === 0) return none('no layer lost input channels');
    const r = await recalibrateAffine(pruned, targets, parentStats!, layoutOf, train, { ...common, indices: recalImages, ...tag('recalibration') });
    return { model: r.model, report: { mode: 'affine', samples: r.samples, layers: r.layers, batchNormLayers: 0 } };
  };
  const collapsedOf = (c: Candidate): number[] =>
    base && c.val ? opts.task.filter((k) => collapsed(c.val!.kWay.perClass[String(k)]!, base.kWay.perClass[String(k)]!, classDrop)) : [];

  let chosen: Candidate;
  let search: SearchReport | undefined;
  const relaxed: RelaxedClass[] = [];
  if (opts.maxDrop !== undefined && base) {
    // no scale within the drop: the parent restricted to the task's outputs is (its accuracy is the base's)
    const r = await searchSmallest(build, collapsedOf, thresholds, base.kWay.accuracy, opts.maxDrop, 'max-drop', undefined, () => build(KEEP_ALL));
    chosen = r.chosen;
    search = r.report;
  } else {
    chosen = await build(thresholds);
    const first = new Map(opts.task.map((k) => [k, chosen.val?.kWay.perClass[String(k)] ?? 0]));
    const level = new Map<number, number>();
    const rounds = [chosen];
    let current = chosen;
    for (let down = collapsedOf(current); down.length > 0 && down.some((k) => (level.get(k) ?? -1) < RELAX_STEPS.length - 1);) {
      const classThresholds = new Map(current.classThresholds);
      for (const k of down) {
        const next = Math.min((level.get(k) ?? -1) + 1, RELAX_STEPS.length - 1);
        level.set(k, next);
        classThresholds.set(k, scaledThresholds(thresholds, RELAX_STEPS[next]!));
      }
      info(
        `${label || 'disassemble'}: class${down.length > 1 ? 'es' : ''} ${down.join(',')} collapsed on held-out training images; relaxing ${down.length > 1 ? 'their' : 'its'} masks`,
      );
      current = await build(thresholds, classThresholds);
      rounds.push(current);
      down = collapsedOf(current);
    }
    // Relaxing one class can starve another, and relaxing a class that does not recover only grows the component:
    // among the rounds with the fewest collapsed classes, the smallest within half a point of the most accurate.
    if (rounds.length > 1) {
      const fewest = Math.min(...rounds.map((r) => collapsedOf(r).length));
      const candidates = rounds.filter((r) => collapsedOf(r).length === fewest);
      const best = Math.max(...candidates.map((r) => r.val!.kWay.accuracy));
      chosen = candidates.filter((r) => r.val!.kWay.accuracy >= best - 0.005).reduce((a, b) => (b.parameters < a.parameters ? b : a));
    }
    // the guard: a component far below the base on held-out images (no single class collapsed, but many
    // lost a little) gets all its thresholds lowered together, relaxed classes keeping their lower ones
    if (base && guard < 1 && chosen.val!.kWay.accuracy < base.kWay.accuracy - guard - 1e-12) {
      const keepRelaxed = chosen.classThresholds;
      const lowered = (t: Thresholds): Promise<Candidate> => {
        const per = new Map([...keepRelaxed].map(([k, c]) => [k, minThresholds(c, t)] as [number, Thresholds]));
        return build(t, per);
      };
      info(
        `${label || 'disassemble'}: ${pct(chosen.val!.kWay.accuracy)} k-way on held-out training images, more than ${pct(guard)} below the base's ${pct(base.kWay.accuracy)}; lowering all thresholds`,
      );
      const r = await searchSmallest(lowered, collapsedOf, thresholds, base.kWay.accuracy, guard, 'guard', chosen, () => build(KEEP_ALL));
      chosen = r.chosen;
      search = r.report;
    }
    for (const k of level.keys()) {
      const t = chosen.classThresholds.get(k);
      if (!t) continue;
      relaxed.push({
        class: k,
        before: first.get(k)!,
        after: chosen.val!.kWay.perClass[String(k)]!,
        base: base!.kWay.perClass[String(k)]!,
        thresholds: t,
        rounds: rounds.includes(chosen) ? rounds.indexOf(chosen) : rounds.length - 1,
      });
    }
  }
  const warnings = [...plan.sampleWarnings, ...splitWarnings, ...chosen.mr.warnings];
  if (opts.maxDrop !== undefined && !search) {
    warnings.push(
      opts.task.length === 1
        ? 'max drop ignored: a one-class component always answers its class, so held-out accuracy cannot guide the search; the reference thresholds were used'
        : 'max drop ignored: it needs held-out images (validation per class > 0); the reference thresholds were used',
    );
  }
  for (const r of relaxed) {
    warnings.push(
      `class ${r.class} collapsed to ${pct(r.before)} k-way on held-out training images (base ${pct(r.base)}); relaxed its thresholds to conv ${r.thresholds.alphaConv}/${r.thresholds.betaConv}, linear ${r.thresholds.alphaLinear}/${r.thresholds.betaLinear}: now ${pct(r.after)}`,
    );
  }
  const stillCollapsed = collapsedOf(chosen);
  for (const k of stillCollapsed)
    warnings.push(
      `class ${k} is still ${pct(chosen.val!.kWay.perClass[String(k)]!)} k-way on held-out training images (base ${pct(base!.kWay.perClass[String(k)]!)}) and relaxing its masks did not bring it back`,
    );

  const pruned = chosen.model;
  const { keptOutputs } = chosen.mr;
  const normalization = norm.from === 'none' ? null : { mean: norm.normalization.mean, std: norm.normalization.std, from: norm.from };
  if (normalization) setInputSpec(pruned, { shape: [...train.shape] as [number, number, number], mean: normalization.mean, std: normalization.std });
  const arch = getArch(model);
  if (arch) setArch(pruned, { ...arch, component: true });
  const parentProvenance = getProvenance(model);
  setProvenance(pruned, {
    operation: 'disassembled',
    parents: [opts.parentHash ?? modelHash(model)],
    data: train.source,
    dataset: train.name,
    classes: keptOutputs.map((o) => labels[o]!.class),
    thresholds: chosen.thresholds,
    ...(chosen.classThresholds.size ? { classThresholds: Object.fromEntries([...chosen.classThresholds].map(([k, t]) => [String(k), t])) } : {}),
    flatten: plan.flatten,
    samplesPerClass: plan.counts,
    ...(opts.unbalanced ? { unbalanced: opts.unbalanced } : {}),
    recalibration: {
      mode: chosen.recal.mode,
      samples: chosen.recal.samples,
      layers: chosen.recal.layers.length,
      batchNormLayers: chosen.recal.batchNormLayers,
      seed,
    },
    ...(opts.maxDrop !== undefined ? { maxDrop: opts.maxDrop } : {}),
    ...(parentProvenance ? { parentOperation: parentProvenance.operation } : {}),
  });
  pruned.graph.name = `${model.graph.name}-component`;
  await checkRuns(pruned, train.shape);
  for (const w of warnings) warn(w);
  const validation: ValidationReport | undefined =
    base && chosen.val
      ? { samples: chosen.val.samples, base: base.kWay, component: chosen.val.kWay, classDrop, relaxed, collapsed: stillCollapsed }
      : undefined;
  return {
    model: pruned,
    task: keptOutputs.map((o) => labels[o]!.class),
    masks: chosen.mr.masks,
    warnings,
    samples: plan.samples,
    recalibration: chosen.recal,
    ...(validation ? { validation } : {}),
    ...(search ? { search } : {}),
    normalization,
  };
}

/**
 * Rank and channel axis of each layer output, from the channel analysis (a tracked
 * activation knows its channel axis: 1 for images, the hidden axis for tokens).
 *
 * @example
 *   const layout = channelLayout(analyzeChannels(model))(cg.layers[0].output); // { rank: 4, axis: 1 }
 */
export function channelLayout(cg: ChannelGraph): LayoutOf {
  return (t) => {
    const a = cg.acts.get(t);
    const rank = a?.kind === 'tracked' ? a.rank : (cg.known.get(t)?.shape?.length ?? 4);
    return { rank, axis: a?.kind === 'tracked' ? a.axis : 1 };
  };
}

/** Layers that lost input channels (depthwise convolutions never mix channels, so they are never changed), with their kept outputs. */
export function changedLayers(cg: ChannelGraph, keep: SpaceMasks): RecalibrationTarget[] {
  const out: RecalibrationTarget[] = [];
  for (const l of cg.layers) {
    if (l.depthwise) continue;
    // the layer's own refs: an input the channel graph does not follow (the image) reads as all kept
    const inMask = maskOf(cg, l.inRef, keep);
    if (inMask.every((x) => x)) continue;
    out.push({ output: l.output, channels: indicesOf(maskOf(cg, l.outRef, keep)) });
  }
  return out;
}

/**
 * --max-drop: every reference threshold scaled by one factor (larger: smaller component).
 * Starting at the reference (1), the factor doubles up (or halves down) until the
 * accepted/refused boundary is bracketed, then bisects it; the smallest accepted
 * component wins. If none is accepted, the most accurate one is returned.
 */
async function searchSmallest<C extends { parameters: number; val?: TaskScore; thresholds: Thresholds }>(
  build: (t: Thresholds) => Promise<C>,
  collapsedOf: (c: C) => number[],
  reference: Thresholds,
  baseAccuracy: number,
  maxDrop: number,
  kind: SearchReport['kind'],
  /** the guard: the component at the reference thresholds, already built and refused; only lower scales are tried */
  refused?: C,
  /** the last resort when no scale is accepted: every channel a kept output reads (recorded as scale -1) */
  floor?: () => Promise<C>,
): Promise<{ chosen: C; report: SearchReport }> {
  const maxScale = 0.99 / Math.max(1e-6, Math.min(...Object.values(reference).filter((v) => v > 0)));
  const tried: { scale: number; c: C; accepted: boolean }[] = [];
  const attempt = async (scale: number): Promise<boolean> => {
    const c = await build(scaledThresholds(reference, scale));
    const accepted = c.val!.kWay.accuracy >= baseAccuracy - maxDrop - 1e-12 && collapsedOf(c).length === 0;
    tried.push({ scale, c, accepted });
    info(
      `${kind} search: thresholds x${scale.toFixed(3)}: ${pct(c.val!.kWay.accuracy)} on held-out images (base ${pct(baseAccuracy)}), ${c.parameters} parameters${accepted ? '' : ', refused'}`,
    );
    return accepted;
  };
  let lo = -1;
  let hi = -1;
  if (refused) tried.push({ scale: 1, c: refused, accepted: false });
  if (!refused && (await attempt(1))) {
    lo = 1;
    for (let s = 2; ; s *= 2) {
      const scale = Math.min(s, maxScale);
      if (!(await attempt(scale))) {
        hi = scale;
        break;
      }
      lo = scale;
      if (scale >= maxScale) break;
    }
  } else {
    hi = 1;
    for (const scale of [0.5, 0.25, 0]) {
      if (await attempt(scale)) {
        lo = scale;
        break;
      }
      hi = scale;
    }
  }
  if (lo >= 0 && hi >= 0) {
    for (let i = 0; i < 3; i++) {
      const mid = (lo + hi) / 2;
      if (await attempt(mid)) lo = mid;
      else hi = mid;
    }
  }
  if (floor && !tried.some((t) => t.accepted)) {
    const c = await floor();
    const ok = c.val!.kWay.accuracy >= baseAccuracy - maxDrop - 1e-12 && collapsedOf(c).length === 0;
    tried.push({ scale: -1, c, accepted: ok });
    info(
      `${kind} search: every channel the task's outputs read: ${pct(c.val!.kWay.accuracy)} on held-out images (base ${pct(baseAccuracy)}), ${c.parameters} parameters${ok ? '' : ', refused'}`,
    );
  }
  const accepted = tried.filter((t) => t.accepted);
  const best = accepted.length
    ? accepted.reduce((a, b) => (b.c.parameters < a.c.parameters ? b : a))
    : tried.reduce((a, b) => (b.c.val!.kWay.accuracy > a.c.val!.kWay.accuracy ? b : a));
  if (!accepted.length)
    warn(
      `${kind} search: no component within ${pct(maxDrop)} of the base's ${pct(baseAccuracy)}; returning the most accurate (${pct(best.c.val!.kWay.accuracy)})`,
    );
  return {
    chosen: best.c,
    report: {
      kind,
      maxDrop,
      baseAccuracy,
      chosen: tried.indexOf(best),
      candidates: tried.map((t) => ({
        scale: t.scale,
        thresholds: t.c.thresholds,
        parameters: t.c.parameters,
        accuracy: t.c.val!.kWay.accuracy,
        accepted: t.accepted,
      })),
    },
  };
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
