/**
 * Assembly of any number of components into one classifier over the union of their
 * tasks (Model LEGO, docs/lego-method.md §6): optional parameter scaling of each component,
 * then a block-diagonal merge when the components share an architecture family (one
 * graph, components side by side in every layer) or parallel branches joined by a
 * Concat of logits otherwise. Overlapping class sets are refused, or merged by
 * averaging the duplicate classes' (scaled) logits.
 *
 * @example
 *   const train = await openDataset('fashion-mnist', 'train');
 *   const r = await assemble([{ model: openModel('a.onnx'), file: 'a.onnx' }, { model: openModel('b.onnx'), file: 'b.onnx' }],
 *     { scaleData: [train] });
 *   saveModel(r.model, 'ab.onnx'); // logits = [scaled a logits, scaled b logits]
 */
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { getArch, getInputSpec, getLabels, modelHash, setArch, setCuts, setInputSpec, setLabels, setProvenance, type OutputLabel } from '../onnx/metadata.js';
import { validateModel } from '../onnx/validate.js';
import { float32 } from '../onnx/tensor.js';
import { uniqueName, tensorNames } from '../onnx/graph.js';
import { inferShapes } from '../onnx/shapes.js';
import { outputCount, sameDataset } from '../runtime/labels.js';
import type { SessionOptions } from '../runtime/session.js';
import { applyAffine, applyScales, computeScales, fitAffine, pickIndices, SCALE_METHODS, type AffineFit, type ScaleMethod, type ScaleResult } from './scale.js';
import { logitBatches } from '../runtime/infer.js';
import { mergeBlockDiagonal } from './blockdiag.js';
import { mergeParallel, type InputAdapter } from './parallel.js';
import { info } from '../util/progress.js';
import { resolveNormalization } from '../runtime/normalization.js';
import { broadcastNormalization } from '../data/augment.js';
import { OptionError, UserError } from '../util/errors.js';
import { oneOf } from '../util/choice.js';

export const OVERLAP_MODES = ['refuse', 'merge'] as const;
export type OverlapMode = (typeof OVERLAP_MODES)[number];
export const ASSEMBLY_METHODS = ['block-diagonal', 'parallel'] as const;
export type AssemblyMethod = (typeof ASSEMBLY_METHODS)[number];

export interface AssemblePart {
  model: Model;
  /** file name, for messages and provenance */
  file?: string;
  /** sha256 of the file (default: hash of the model's encoding) */
  hash?: string;
}

export interface AssembleOptions {
  /**
   * Training splits to measure the scale factors on; each component uses the one whose
   * dataset its labels name. Omit (or pass []) to assemble without scaling.
   */
  scaleData?: readonly Dataset[];
  /** images per class for scaling (seeded choice; default 1000) */
  scaleSamplesPerClass?: number;
  /**
   * 'fit' (default): one scale and one shift per output fitted on the union of the
   * components' classes (needs one dataset holding every class and no overlapping classes;
   * otherwise 'mean-max' is used, with a warning); 'mean-max': the paper's r_j = 1 / mean max
   * logit per component
   */
  scaleMethod?: ScaleMethod;
  seed?: number;
  overlap?: OverlapMode;
  /** 'auto' (default): block-diagonal when the topologies match, else parallel */
  method?: 'auto' | AssemblyMethod;
  batchSize?: number;
  session?: SessionOptions;
  /** input normalisation of components that carry none in their metadata (--mean/--std) */
  normalization?: { mean?: number[]; std?: number[] };
}

export interface ClassOverlap {
  dataset: string;
  class: number;
  /** component indices that have an output for it */
  components: number[];
}

export interface AssembleResult {
  model: Model;
  method: AssemblyMethod;
  /** why block-diagonal assembly was not possible (method 'parallel' under 'auto') */
  fallbackReason?: string;
  /** per component: its scale factors, or null without scaling */
  scales: (ScaleResult | null)[];
  /** the 'fit' scaling: accuracy on its calibration images before and after */
  calibration?: { method: 'fit'; images: number; before: number; after: number };
  /** the assembled model's outputs */
  labels: OutputLabel[];
  overlaps: ClassOverlap[];
  warnings: string[];
}

/** Name of the constant that averages duplicate classes' logits (frozen when fine-tuning). */
export const MERGE_MATRIX = 'lego.merge_duplicates';
export const DEFAULT_SCALE_SAMPLES = 1000;
export const DEFAULT_SCALE_METHOD: ScaleMethod = 'fit';

/**
 * The 'fit' scaling: every component's logits on the same training images (up to
 * scaleSamplesPerClass of each class of the union), concatenated in assembly order, and one
 * scale and shift per output fitted so that the assembled arg-max classifies them.
 */
async function fitScales(
  models: readonly Model[],
  labels: readonly OutputLabel[][],
  ds: Dataset,
  files: readonly string[],
  opts: AssembleOptions,
): Promise<{ factors: number[][]; shifts: number[][]; fit: AffineFit }> {
  if (ds.split === 'test') throw new UserError(`parameter scaling must not look at the test split (${ds.source}); use the train split`);
  const flat = labels.flat();
  const outputOf = new Map(flat.map((l, j) => [l.class, j]));
  const indices = pickIndices(
    ds,
    [...outputOf.keys()].sort((a, b) => a - b),
    opts.scaleSamplesPerClass ?? DEFAULT_SCALE_SAMPLES,
    opts.seed ?? 0,
  );
  const k = flat.length;
  const z = new Float32Array(indices.length * k);
  const targets = new Int32Array(indices.length);
  let offset = 0;
  for (let c = 0; c < models.length; c++) {
    const model = models[c]!;
    const kc = labels[c]!.length;
    const norm = resolveNormalization(model, ds.shape[0], {}, { file: files[c]! });
    let row = 0;
    for await (const { batch, z: logits } of logitBatches(model, ds, {
      ...opts.session,
      normalization: norm.normalization,
      indices,
      file: files[c]!,
      label: `scale ${files[c]}`,
      ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    })) {
      for (let b = 0; b < batch.size; b++, row++) {
        if (c === 0) targets[row] = outputOf.get(batch.labels[b]!)!;
        for (let j = 0; j < kc; j++) z[row * k + offset + j] = logits[b * kc + j]!;
      }
    }
    offset += kc;
  }
  const fit = fitAffine(z, indices.length, k, targets);
  const factors: number[][] = [],
    shifts: number[][] = [];
  offset = 0;
  for (const l of labels) {
    factors.push(fit.scale.slice(offset, offset + l.length));
    shifts.push(fit.shift.slice(offset, offset + l.length));
    offset += l.length;
  }
  return { factors, shifts, fit };
}

/**
 * A component with its input normalisation in its metadata: its own, else `given`
 * (--mean/--std); with neither, the component is returned as it is and `missing` is set:
 * it will be fed [0, 1] pixels, which is wrong for any model trained on normalised inputs.
 */
export function withNormalization(model: Model, file: string, given?: { mean?: number[]; std?: number[] }): { model: Model; missing: boolean } {
  const spec = getInputSpec(model);
  if (spec?.mean && spec.std) return { model, missing: false };
  if (given?.mean || given?.std) {
    const shape = spec?.shape ?? inputShapeOf(model, file);
    const norm = broadcastNormalization({ mean: given.mean ?? [0], std: given.std ?? [1] }, shape[0], 'options');
    const copy = { ...model, metadata: { ...model.metadata } };
    setInputSpec(copy, { shape, mean: norm.mean, std: norm.std });
    return { model: copy, missing: false };
  }
  return { model, missing: true };
}

function inputShapeOf(model: Model, file: string): [number, number, number] {
  const s = model.graph.inputs[0]?.shape?.slice(1);
  if (model.graph.inputs.length !== 1 || !s || s.length !== 3 || !s.every((d) => typeof d === 'number')) {
    throw new UserError(`${file}: expected one image input [N, C, H, W] with fixed C, H, W`);
  }
  return s as [number, number, number];
}

/**
 * Assembles task components into one classifier: block-diagonal merge where the graphs allow it, else side by side.
 *
 * @example
 *   const parts = ['c01.onnx', 'c23.onnx'].map((file) => ({ model: openModel(file), file }));
 *   const { model, method } = await assemble(parts);
 *   saveModel(model, 'c0123.onnx');
 */
export async function assemble(given: readonly AssemblePart[], opts: AssembleOptions = {}): Promise<AssembleResult> {
  if (given.length === 0) throw new UserError('assemble: no components given');
  const files = given.map((p, k) => p.file ?? `component ${k}`);
  const warnings: string[] = [];
  const parts = given.map((p, k) => {
    const r = withNormalization(p.model, files[k]!, opts.normalization);
    if (r.missing) {
      // the one warning per model (runtime/normalization.ts), naming the flags
      resolveNormalization(r.model, inputShapeOf(r.model, files[k]!)[0], undefined, { file: files[k]! });
      warnings.push(`${files[k]} carries no input normalisation: fed [0, 1] pixels`);
    }
    return { ...p, model: r.model };
  });
  const printed = warnings.length;
  const labels = parts.map((p, k) => componentLabels(p.model, files[k]!));
  const shape = commonInputShape(parts, files);
  const overlaps = findOverlaps(labels);
  const overlapMode = opts.overlap ?? 'refuse';
  if (overlaps.length && overlapMode === 'refuse') {
    const o = overlaps[0]!;
    const list = overlaps.map((x) => `${x.dataset} class ${x.class} (${x.components.map((k) => files[k]).join(', ')})`).join('; ');
    throw new OptionError(
      (n) =>
        `components overlap in ${overlaps.length} class${overlaps.length > 1 ? 'es' : ''}: ${list}; pass ${n('overlap', 'merge')} to average their logits, or assemble components with disjoint tasks (first: ${files[o.components[0]!]} and ${files[o.components[1]!]})`,
    );
  }
  const scales: (ScaleResult | null)[] = [];
  const scaled: Model[] = [];
  let calibration: AssembleResult['calibration'];
  const scaleMethod = oneOf(opts.scaleMethod ?? DEFAULT_SCALE_METHOD, 'scale method', SCALE_METHODS);
  const scaling = !!opts.scaleData && opts.scaleData.length > 0;
  if (scaling && scaleMethod === 'fit') {
    const sets = [...new Set(labels.map((l, k) => scaleDataFor(l, opts.scaleData!, files[k]!)))];
    const why = overlaps.length ? 'the components share classes' : sets.length > 1 ? 'the components classify classes of different datasets' : undefined;
    if (why) {
      warnings.push(`scaling by mean max logit instead of a fit: ${why}`);
    } else {
      const fitted = await fitScales(
        parts.map((p) => p.model),
        labels,
        sets[0]!,
        files,
        opts,
      );
      calibration = { method: 'fit', images: fitted.fit.images, before: fitted.fit.before, after: fitted.fit.after };
      info(
        `scaling: one scale and shift per output fitted on ${fitted.fit.images} training images of the ${labels.flat().length} classes: ${(100 * fitted.fit.before).toFixed(2)}% -> ${(100 * fitted.fit.after).toFixed(2)}% on them`,
      );
      for (let k = 0; k < parts.length; k++) {
        scales.push({
          method: 'fit',
          factors: fitted.factors[k]!,
          shifts: fitted.shifts[k]!,
          correct: [],
          meanMaxLogit: [],
          unscaled: [],
          data: sets[0]!.source,
        });
        scaled.push(applyAffine(parts[k]!.model, fitted.factors[k]!, fitted.shifts[k]!, files[k]!));
      }
    }
  }
  for (let k = scaled.length; k < parts.length; k++) {
    const p = parts[k]!;
    if (!opts.scaleData || opts.scaleData.length === 0) {
      scales.push(null);
      scaled.push(p.model);
      continue;
    }
    const ds = scaleDataFor(labels[k]!, opts.scaleData, files[k]!);
    const s0 = await computeScales(p.model, ds, {
      maxPerClass: opts.scaleSamplesPerClass ?? DEFAULT_SCALE_SAMPLES,
      seed: opts.seed ?? 0,
      file: files[k]!,
      label: `scale ${files[k]}`,
      ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
      ...(opts.session ? { session: opts.session } : {}),
    });
    const s: ScaleResult = { method: 'mean-max', ...s0 };
    for (const u of s.unscaled) warnings.push(`${files[k]}: output ${u.output} (class ${u.class}) keeps scale 1: ${u.reason}`);
    scales.push(s);
    scaled.push(applyScales(p.model, s.factors, files[k]!));
  }
  const norms = parts.map((p) => getInputSpec(p.model));
  const adapters = inputAdapters(norms, shape[0]);
  let method: AssemblyMethod = 'parallel';
  let fallbackReason: string | undefined;
  let model: Model;
  if (adapters.some((a) => a)) {
    fallbackReason = 'the components expect different input normalisations';
  } else if (opts.method === 'parallel') {
    fallbackReason = 'parallel branches requested';
  } else {
    const r = mergeBlockDiagonal(scaled);
    if ('model' in r) {
      model = r.model;
      method = 'block-diagonal';
    } else fallbackReason = r.reason;
  }
  if (method === 'parallel') {
    if (opts.method === 'block-diagonal') throw new UserError(`cannot assemble block-diagonally: ${fallbackReason}`);
    info(`assembling as parallel branches: ${fallbackReason}`);
    model = mergeParallel(scaled, adapters);
  }
  let outLabels = labels.flat();
  if (overlaps.length) {
    outLabels = mergeDuplicates(model!, outLabels);
    warnings.push(`merged ${overlaps.length} duplicate class${overlaps.length > 1 ? 'es' : ''} by averaging their logits`);
  }
  for (const w of warnings.slice(printed)) info(`warning: ${w}`);
  setMetadata(model!, parts, files, {
    labels: outLabels,
    shape,
    norm: norms[0],
    method,
    scales,
    overlap: overlapMode,
    overlaps,
    ...(fallbackReason ? { fallbackReason } : {}),
  });
  validateModel(model!, 'assembled model');
  return {
    model: model!,
    method,
    ...(fallbackReason && method === 'parallel' ? { fallbackReason } : {}),
    scales,
    ...(calibration ? { calibration } : {}),
    labels: outLabels,
    overlaps,
    warnings,
  };
}

/** A component's output labels; assembly needs to know which class each output is. */
export function componentLabels(model: Model, file: string): OutputLabel[] {
  const labels = getLabels(model);
  if (!labels)
    throw new UserError(
      `${file} carries no label metadata (modelsmith.labels); assembly needs each output's class and dataset: use components written by modelsmith disassemble or train`,
    );
  const k = outputCount(model);
  if (k !== -1 && k !== labels.length) throw new UserError(`${file}: label metadata lists ${labels.length} classes but the model has ${k} outputs`);
  return labels;
}

function commonInputShape(parts: readonly AssemblePart[], files: string[]): [number, number, number] {
  const shapes = parts.map((p, k) => {
    const spec = getInputSpec(p.model)?.shape;
    if (spec) return spec;
    const s = p.model.graph.inputs[0]?.shape?.slice(1);
    if (p.model.graph.inputs.length !== 1 || !s || s.length !== 3 || !s.every((d) => typeof d === 'number')) {
      throw new UserError(`${files[k]}: expected one image input [N, C, H, W] with fixed C, H, W`);
    }
    return s as [number, number, number];
  });
  const first = shapes[0]!;
  const bad = shapes.findIndex((s) => s.join('x') !== first.join('x'));
  if (bad >= 0)
    throw new UserError(
      `components have different input shapes: ${files[0]} expects ${first.join('x')}, ${files[bad]} expects ${shapes[bad]!.join('x')}; components must share one input`,
    );
  return first;
}

const classKey = (l: OutputLabel): string => `${l.dataset.toLowerCase().replace(/-sample$/, '')}\u0000${l.class}`;

/** Classes that more than one component outputs (and duplicates within one component). */
export function findOverlaps(labels: readonly OutputLabel[][]): ClassOverlap[] {
  const seen = new Map<string, ClassOverlap>();
  labels.forEach((list, k) => {
    for (const l of list) {
      const key = classKey(l);
      const o = seen.get(key);
      if (o) o.components.push(k);
      else seen.set(key, { dataset: l.dataset, class: l.class, components: [k] });
    }
  });
  return [...seen.values()].filter((o) => o.components.length > 1);
}

function scaleDataFor(labels: OutputLabel[], data: readonly Dataset[], file: string): Dataset {
  const names = [...new Set(labels.map((l) => l.dataset))];
  const ds = data.find((d) => names.some((n) => sameDataset(n, d.name)));
  if (!ds)
    throw new OptionError(
      (o) =>
        `${file} classifies classes of ${names.join(', ')}, but no ${o('scaleData')} dataset is one of them (given: ${data.map((d) => d.name).join(', ')})`,
    );
  return ds;
}

/**
 * Per component, the affine map from the assembled model's input (normalised as
 * component 0 expects) to the component's own expected input; undefined where the two
 * agree.
 */
function inputAdapters(norms: ReturnType<typeof getInputSpec>[], channels: number): (InputAdapter | undefined)[] {
  const full = (v: number[] | undefined, fill: number): number[] =>
    v === undefined ? new Array(channels).fill(fill) : v.length === 1 ? new Array(channels).fill(v[0]!) : v;
  const m0 = full(norms[0]?.mean, 0),
    s0 = full(norms[0]?.std, 1);
  return norms.map((n) => {
    const m = full(n?.mean, 0),
      s = full(n?.std, 1);
    if (m.every((v, c) => Math.abs(v - m0[c]!) < 1e-7) && s.every((v, c) => Math.abs(v - s0[c]!) < 1e-7)) return undefined;
    return { scale: s0.map((v, c) => v / s[c]!), shift: m0.map((v, c) => (v - m[c]!) / s[c]!) };
  });
}

/**
 * Appends a MatMul by a constant [K, U] matrix that averages the logits of outputs
 * naming the same class; returns the labels of the U merged outputs (first appearance
 * order).
 */
function mergeDuplicates(model: Model, labels: OutputLabel[]): OutputLabel[] {
  const unique: OutputLabel[] = [];
  const at = new Map<string, number>();
  const col = labels.map((l) => {
    const key = classKey(l);
    let u = at.get(key);
    if (u === undefined) {
      u = unique.length;
      at.set(key, u);
      unique.push(l);
    }
    return u;
  });
  const counts = new Array<number>(unique.length).fill(0);
  for (const u of col) counts[u]!++;
  const k = labels.length,
    n = unique.length;
  const m = new Float32Array(k * n);
  col.forEach((u, j) => {
    m[j * n + u] = 1 / counts[u]!;
  });
  const g = model.graph;
  const out = g.outputs[0]!;
  const taken = tensorNames(g);
  const inner = uniqueName(g, `${out.name}.duplicates`, taken);
  for (const node of g.nodes) node.outputs = node.outputs.map((o) => (o === out.name ? inner : o));
  g.initializers.set(MERGE_MATRIX, float32([k, n], m));
  g.nodes.push({ name: 'lego.merge', opType: 'MatMul', inputs: [inner, MERGE_MATRIX], outputs: [out.name], attributes: {} });
  g.outputs = [{ ...out, shape: [out.shape?.[0] ?? 'N', n] }];
  g.outputs = [inferShapes(model).get(out.name) ?? g.outputs[0]!];
  return unique;
}

interface MetadataInfo {
  labels: OutputLabel[];
  shape: [number, number, number];
  norm: ReturnType<typeof getInputSpec>;
  method: AssemblyMethod;
  scales: (ScaleResult | null)[];
  overlap: OverlapMode;
  overlaps: ClassOverlap[];
  fallbackReason?: string;
}

function setMetadata(model: Model, parts: readonly AssemblePart[], files: string[], m: MetadataInfo): void {
  setLabels(model, m.labels);
  setInputSpec(model, { shape: m.shape, ...(m.norm?.mean ? { mean: m.norm.mean } : {}), ...(m.norm?.std ? { std: m.norm.std } : {}) });
  setArch(model, { name: 'assembled', method: m.method, components: parts.map((p) => getArch(p.model)?.name ?? null) });
  setCuts(model, [{ name: 'logits', tensor: model.graph.outputs[0]!.name, kind: 'logits' }]);
  setProvenance(model, {
    operation: 'assembled',
    parents: parts.map((p) => p.hash ?? modelHash(p.model)),
    method: m.method,
    ...(m.fallbackReason && m.method === 'parallel' ? { parallelBecause: m.fallbackReason } : {}),
    components: parts.map((p, k) => ({ file: files[k], outputs: getLabels(p.model)?.length ?? null, scaleFactors: m.scales[k]?.factors ?? null })),
    scaled: m.scales.some((s) => s !== null),
    overlap: m.overlap,
    duplicates: m.overlaps.map((o) => ({ dataset: o.dataset, class: o.class, components: o.components })),
  });
}
