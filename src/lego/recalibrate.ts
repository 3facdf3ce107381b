/**
 * Recalibration of a pruned component (docs/lego-method.md §4b). Removing input channels of a
 * layer shifts and shrinks what that layer outputs, and every later layer was trained on
 * the parent's activations. BatchNorm re-estimation repairs this only where BatchNorm
 * nodes exist; PyTorch's default export folds them into the convolutions, so this module
 * corrects the layers themselves: each layer whose input channels were pruned gets a
 * per-channel affine map of its outputs (folded into its weights and bias) that gives
 * them the parent's per-channel mean and standard deviation on the same training images.
 *
 * One pass measures every correction at once, as BatchNorm re-estimation does: in a
 * statistics graph each corrected layer's output is normalised with its batch statistics
 * and mapped to the parent's, so every layer is measured behind corrected layers, and
 * the averages of the batch statistics define the final affine maps. Because the
 * correction acts on the Conv/Gemm outputs, a folded and an unfolded export of one
 * network get the same component.
 *
 * @example
 *   const parent = await layerOutputStatistics(model, outputs, train, { indices, normalization });
 *   const r = await recalibrateAffine(component, targets, parent, train, { indices, normalization });
 */
import type { Graph, Model, Node, Tensor } from '../onnx/types.js';
import type { Dataset, Normalization } from '../data/types.js';
import {
  attrFloat,
  attrInt,
  cloneModel,
  constantValue,
  float as floatAttr,
  int,
  ints,
  opsetVersion,
  producers,
  tensorNames,
  uniqueName,
} from '../onnx/graph.js';
import { float32, int64, numel, toFloat32 } from '../onnx/tensor.js';
import { removeUnused } from '../onnx/prune.js';
import { inferBatches } from '../runtime/infer.js';
import type { SessionOptions } from '../runtime/session.js';
import { UserError } from '../util/errors.js';

/**
 * How a component is recalibrated: 'affine' (this module; default), 'batchnorm' (its
 * BatchNorm running statistics re-estimated; nothing happens without BatchNorm nodes),
 * 'none' (the component is exactly the masked parent).
 */
export type RecalibrationMode = 'affine' | 'batchnorm' | 'none';
export const RECALIBRATION_MODES: readonly RecalibrationMode[] = ['affine', 'batchnorm', 'none'];

/** Per-channel statistics of one tensor over images (and spatial positions). */
export interface ChannelStatistics {
  mean: Float64Array;
  /** population variance */
  variance: Float64Array;
  /** images the statistics were taken over */
  count: number;
}

export interface StatisticsOptions {
  indices: readonly number[];
  normalization: Normalization;
  batchSize?: number;
  session?: SessionOptions;
  label?: string;
}

/** A layer output to correct: its tensor and, per component channel, the parent channel it was. */
export interface RecalibrationTarget {
  /** the layer's output tensor (same name in parent and component) */
  output: string;
  /** parent channel index of each component channel, ascending */
  channels: readonly number[];
}

/** One corrected layer, for the record. */
export interface RecalibratedLayer {
  node: string;
  output: string;
  channels: number;
  /** mean |log(scale)| and mean |shift| / parent std over its channels: how much it moved */
  meanLogScale: number;
  meanShift: number;
}

export interface AffineRecalibration {
  model: Model;
  layers: RecalibratedLayer[];
  /** images the statistics were taken over */
  samples: number;
}

const EPS = 1e-5;

/** Reduce-mean over all axes but the channel axis, as the model's opset spells it (axes moved to an input in opset 18). */
function reduceMean(g: Graph, opset: number, x: string, rank: number, channelAxis: number, out: string, name: string): Node[] {
  const axes = Array.from({ length: rank }, (_, i) => i).filter((i) => i !== channelAxis);
  if (opset < 18) return [{ name, opType: 'ReduceMean', inputs: [x], outputs: [out], attributes: { axes: ints(axes), keepdims: int(1) } }];
  const a = uniqueName(g, `${name}.axes`);
  g.initializers.set(a, int64([axes.length], axes));
  return [{ name, opType: 'ReduceMean', inputs: [x, a], outputs: [out], attributes: { keepdims: int(1) } }];
}

interface Tapped {
  tensor: string;
  mean: string;
  variance: string;
}

/**
 * Adds, for each tensor, its batch mean and (biased) batch variance per channel as graph
 * outputs. With `normalise`, the tensor's consumers see it normalised by those batch
 * statistics and mapped to the given mean and std instead.
 */
function statisticsGraph(
  model: Model,
  tensors: ({ name: string; target?: { mean: Float32Array; std: Float32Array } } & TensorLayout)[],
): { model: Model; tapped: Tapped[] } {
  const m = cloneModel(model);
  const g = m.graph;
  const opset = opsetVersion(m);
  const prod = producers(g);
  const tapped: Tapped[] = [];
  const taken = tensorNames(g);
  const fresh = (base: string): string => {
    const n = uniqueName(g, base, taken);
    taken.add(n);
    return n;
  };
  for (const t of tensors) {
    const node = prod.get(t.name);
    if (!node) throw new Error(`recalibration: tensor ${t.name} has no producer`);
    const axis = t.axis;
    const raw = t.target ? fresh(`${t.name}.raw`) : t.name;
    if (t.target) node.outputs = node.outputs.map((o) => (o === t.name ? raw : o));
    const [mean, centred, square, variance] = ['mean', 'centred', 'square', 'variance'].map((s) => fresh(`${t.name}.recal.${s}`)) as [
      string,
      string,
      string,
      string,
    ];
    const added: Node[] = [
      ...reduceMean(g, opset, raw, t.rank, axis, mean, fresh(`${t.name}.recal.mean_op`)),
      { name: fresh(`${t.name}.recal.sub`), opType: 'Sub', inputs: [raw, mean], outputs: [centred], attributes: {} },
      { name: fresh(`${t.name}.recal.square_op`), opType: 'Mul', inputs: [centred, centred], outputs: [square], attributes: {} },
      ...reduceMean(g, opset, square, t.rank, axis, variance, fresh(`${t.name}.recal.variance_op`)),
    ];
    if (t.target) {
      const shape = Array.from({ length: t.rank }, (_, i) => (i === axis ? t.target!.mean.length : 1));
      const [eps, std, scale, tmean, z, zs] = ['eps', 'std', 'scale', 'target_mean', 'z', 'zs'].map((s) => fresh(`${t.name}.recal.${s}`)) as [
        string,
        string,
        string,
        string,
        string,
        string,
      ];
      g.initializers.set(eps, float32([], [EPS]));
      g.initializers.set(scale, float32(shape, t.target.std));
      g.initializers.set(tmean, float32(shape, t.target.mean));
      const vEps = fresh(`${t.name}.recal.variance_eps`);
      added.push(
        { name: fresh(`${t.name}.recal.add_eps`), opType: 'Add', inputs: [variance, eps], outputs: [vEps], attributes: {} },
        { name: fresh(`${t.name}.recal.sqrt`), opType: 'Sqrt', inputs: [vEps], outputs: [std], attributes: {} },
        { name: fresh(`${t.name}.recal.div`), opType: 'Div', inputs: [centred, std], outputs: [z], attributes: {} },
        { name: fresh(`${t.name}.recal.scale_op`), opType: 'Mul', inputs: [z, scale], outputs: [zs], attributes: {} },
        { name: fresh(`${t.name}.recal.shift_op`), opType: 'Add', inputs: [zs, tmean], outputs: [t.name], attributes: {} },
      );
    }
    g.nodes.splice(g.nodes.indexOf(node) + 1, 0, ...added);
    tapped.push({ tensor: t.name, mean, variance });
    g.outputs.push({ name: mean, dtype: 'float32' }, { name: variance, dtype: 'float32' });
  }
  g.valueInfo = new Map();
  return { model: m, tapped };
}

/**
 * Where a layer output keeps its channels: its rank and channel axis — axis 1 for Conv
 * ([N, C, H, W]) and Gemm ([N, C]); the last axis for a MatMul over transformer tokens
 * ([N, T, C] or [T, N, C]). Statistics are per channel over every other axis.
 */
export interface TensorLayout {
  rank: number;
  axis: number;
}
export type LayoutOf = (tensor: string) => TensorLayout;

/**
 * Per-channel mean and population variance of `tensors` in `model` over the images
 * (batch statistics merged exactly, Chan et al.), in float64.
 */
export async function layerOutputStatistics(
  model: Model,
  tensors: readonly string[],
  layoutOf: LayoutOf,
  ds: Dataset,
  opts: StatisticsOptions,
): Promise<Map<string, ChannelStatistics>> {
  const sg = statisticsGraph(
    model,
    tensors.map((name) => ({ name, ...layoutOf(name) })),
  );
  const acc = new Map<string, ChannelStatistics>();
  for await (const { batch, outputs } of inferBatches(sg.model, ds, {
    ...opts.session,
    normalization: opts.normalization,
    indices: opts.indices,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    ...(opts.label ? { label: opts.label } : {}),
  })) {
    for (const t of sg.tapped) {
      const mean = outputs[t.mean]!.data as Float32Array;
      const variance = outputs[t.variance]!.data as Float32Array;
      // every batch has the same positions per image, so images weigh the merge correctly
      merge(acc, t.tensor, mean, variance, batch.size);
    }
  }
  return acc;
}

function merge(acc: Map<string, ChannelStatistics>, tensor: string, mean: Float32Array, variance: Float32Array, n: number): void {
  const s = acc.get(tensor);
  if (!s) {
    acc.set(tensor, { mean: Float64Array.from(mean), variance: Float64Array.from(variance), count: n });
    return;
  }
  const total = s.count + n;
  for (let c = 0; c < mean.length; c++) {
    const delta = mean[c]! - s.mean[c]!;
    const m2 = s.variance[c]! * s.count + variance[c]! * n + (delta * delta * s.count * n) / total;
    s.mean[c] = s.mean[c]! + (delta * n) / total;
    s.variance[c] = m2 / total;
  }
  s.count = total;
}

/**
 * The component with each target layer's outputs mapped, per channel, to the parent's
 * mean and standard deviation (`parent`, measured on the same images). `indices` should
 * hold a whole number of batches (the rest is dropped): every batch is normalised by its
 * own statistics, as BatchNorm in training mode.
 */
export async function recalibrateAffine(
  component: Model,
  targets: readonly RecalibrationTarget[],
  parent: ReadonlyMap<string, ChannelStatistics>,
  layoutOf: LayoutOf,
  ds: Dataset,
  opts: StatisticsOptions,
): Promise<AffineRecalibration> {
  if (targets.length === 0) return { model: component, layers: [], samples: 0 };
  const batchSize = Math.min(opts.batchSize ?? 256, opts.indices.length);
  if (batchSize < 2) throw new UserError(`recalibration needs at least 2 training images of the task, got ${opts.indices.length}`);
  const used = opts.indices.slice(0, Math.floor(opts.indices.length / batchSize) * batchSize);
  const wanted = targets.map((t) => {
    const p = parent.get(t.output);
    if (!p) throw new Error(`recalibration: no parent statistics for ${t.output}`);
    return {
      name: t.output,
      ...layoutOf(t.output),
      target: { mean: Float32Array.from(t.channels, (c) => p.mean[c]!), std: Float32Array.from(t.channels, (c) => Math.sqrt(p.variance[c]!)) },
    };
  });
  const sg = statisticsGraph(component, wanted);
  const sums = new Map(
    sg.tapped.map((t) => [
      t.tensor,
      {
        mean: new Float64Array(wanted.find((w) => w.name === t.tensor)!.target.mean.length),
        variance: new Float64Array(wanted.find((w) => w.name === t.tensor)!.target.mean.length),
      },
    ]),
  );
  let batches = 0;
  for await (const { outputs } of inferBatches(sg.model, ds, {
    ...opts.session,
    normalization: opts.normalization,
    indices: used,
    batchSize,
    ...(opts.label ? { label: opts.label } : {}),
  })) {
    for (const t of sg.tapped) {
      const s = sums.get(t.tensor)!;
      const mean = outputs[t.mean]!.data as Float32Array;
      const variance = outputs[t.variance]!.data as Float32Array;
      for (let c = 0; c < s.mean.length; c++) {
        s.mean[c]! += mean[c]!;
        s.variance[c]! += variance[c]!;
      }
    }
    batches++;
  }
  const result = cloneModel(component);
  const g = result.graph;
  const prod = producers(g);
  const layers: RecalibratedLayer[] = [];
  for (const w of wanted) {
    const s = sums.get(w.name)!;
    const scale = new Float32Array(s.mean.length);
    const shift = new Float32Array(s.mean.length);
    let logScale = 0;
    let moved = 0;
    for (let c = 0; c < scale.length; c++) {
      const mean = s.mean[c]! / batches;
      const variance = s.variance[c]! / batches;
      // a channel the task's images never move (variance ~0) keeps its scale and is only shifted
      const a = variance > 1e-12 ? w.target.std[c]! / Math.sqrt(variance + EPS) : 1;
      scale[c] = a;
      shift[c] = w.target.mean[c]! - a * mean;
      logScale += Math.abs(Math.log(Math.max(a, 1e-30)));
      moved += Math.abs(w.target.mean[c]! - mean) / Math.max(w.target.std[c]!, 1e-6);
    }
    const node = prod.get(w.name)!;
    foldAffine(g, node, scale, shift, prod);
    layers.push({ node: node.name, output: w.name, channels: scale.length, meanLogScale: logScale / scale.length, meanShift: moved / scale.length });
  }
  removeUnused(g);
  return { model: result, layers, samples: used.length };
}

/** Replaces input `slot` of `node` by a fresh initializer. */
function setInput(g: Graph, node: Node, slot: number, value: Tensor, base: string): void {
  const name = uniqueName(g, `${base}.recalibrated`);
  g.initializers.set(name, value);
  while (node.inputs.length <= slot) node.inputs.push('');
  node.inputs[slot] = name;
}

/** Scales output channel o of a Conv/Gemm/MatMul node's weight by scale[o] and adds shift[o] to its output (through its bias, or an Add for MatMul). */
function foldAffine(g: Graph, node: Node, scale: Float32Array, shift: Float32Array, prod: Map<string, Node>): void {
  const o = scale.length;
  const wName = node.inputs[1]!;
  const wt = constantValue(g, wName, prod);
  if (!wt) throw new UserError(`node "${node.name}" (${node.opType}): weight "${wName}" is not a constant; cannot recalibrate it`);
  const w = Float32Array.from(toFloat32(wt));
  // which weight axis indexes the outputs
  const transB = node.opType === 'Gemm' ? attrInt(node, 'transB', 0) === 1 : false;
  const outAxis = node.opType === 'Conv' || transB ? 0 : 1;
  if (wt.dims[outAxis] !== o) throw new Error(`recalibration: ${node.name} has ${wt.dims[outAxis]} outputs, the statistics ${o}`);
  if (outAxis === 0) {
    const inner = numel(wt.dims.slice(1));
    for (let c = 0; c < o; c++) for (let i = 0; i < inner; i++) w[c * inner + i]! *= scale[c]!;
  } else {
    const rows = wt.dims[0]!;
    for (let r = 0; r < rows; r++) for (let c = 0; c < o; c++) w[r * o + c]! *= scale[c]!;
  }
  setInput(g, node, 1, float32([...wt.dims], w), wName);
  if (node.opType === 'MatMul') {
    const out = node.outputs[0]!;
    const inner = uniqueName(g, `${out}.unshifted`);
    const bias = uniqueName(g, `${out}.recal_shift`);
    g.initializers.set(bias, float32([o], shift));
    node.outputs[0] = inner;
    g.nodes.splice(g.nodes.indexOf(node) + 1, 0, {
      name: uniqueName(g, `${node.name}.recal_shift`),
      opType: 'Add',
      inputs: [inner, bias],
      outputs: [out],
      attributes: {},
    });
    return;
  }
  const slot = 2;
  const bName = node.inputs[slot];
  const bt = bName ? constantValue(g, bName, prod) : undefined;
  if (bName && !bt) throw new UserError(`node "${node.name}" (${node.opType}): bias "${bName}" is not a constant; cannot recalibrate it`);
  // Gemm adds beta * C; with beta 0 the stored C is unused and becomes the shift alone
  const beta = node.opType === 'Gemm' ? attrFloat(node, 'beta', 1) : 1;
  const b = new Float32Array(o);
  if (bt && beta !== 0) {
    const old = toFloat32(bt);
    for (let c = 0; c < o; c++) b[c] = old.length === 1 ? old[0]! : old[c]!;
  }
  for (let c = 0; c < o; c++) b[c] = scale[c]! * b[c]! + shift[c]! / (beta === 0 ? 1 : beta);
  if (node.opType === 'Gemm' && beta === 0) node.attributes = { ...node.attributes, beta: floatAttr(1) };
  setInput(g, node, slot, float32([o], b), bName || `${node.name}.bias`);
}
