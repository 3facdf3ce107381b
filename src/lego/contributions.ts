/**
 * Contributions of each layer's inputs to its outputs (docs/lego-method.md §2), accumulated per
 * class as the representative samples stream through the model with taps on the layer
 * inputs: V_l[c, o, i] = sum over class-c samples b of C[b, o, i].
 *
 * - Linear: C[b,o,i] = relu(x[b,i] * W[o,i]).
 * - Conv: C[b,o,i] = relu(sum_k T[b,i,k] * W[o,i,k]) with T[b,i,k] the sum over output
 *   positions of the input value seen by kernel offset k (stride, padding and dilation
 *   respected): the exact value of summing the unfolded input times the weight, without
 *   ever unfolding. Grouped convs: input channel i only reaches its group's outputs, so V
 *   has the weight's [O, I/groups] shape.
 *
 * Memory is the V tensors (one per layer and task class) plus the taps of one batch,
 * whose size is capped by TAP_BUDGET_BYTES rather than by the caller's batch size: it
 * does not grow with the number of samples or the batch size. (ONNX Runtime returns each
 * run's taps in fresh buffers that only the garbage collector frees, and a few batches'
 * worth stay alive: measured 2.5 batches of taps on ResNet-50; bounding the batch bounds
 * that too.)
 *
 * @example
 *   const v = await accumulateContributions(cg, train, [[12, 0], [40, 0], [7, 1]], { classes: [0, 1], normalization });
 *   v.get('features.3')!.values[0]; // Float64Array O*I for class 0
 */
import type { Dataset, Normalization } from '../data/types.js';
import { inferBatches } from '../runtime/infer.js';
import type { SessionOptions } from '../runtime/session.js';
import type { ChannelGraph, Conv2dWindow, Layer } from './channels.js';

export interface LayerContributions {
  layer: Layer;
  /** per task class (same order as `classes`): Float64Array of outChannels * groupIn */
  values: Float64Array[];
  /** samples accumulated per class */
  samples: number[];
}

export interface ContributionOptions {
  /** the task's classes; V is kept for these only */
  classes: readonly number[];
  normalization: Normalization;
  batchSize?: number;
  session?: SessionOptions;
  label?: string;
}

/** Bytes of taps one contribution batch may hold (see the module comment). */
export const TAP_BUDGET_BYTES = 8 * 2 ** 20;

/**
 * Float32 bytes of every tapped tensor for one image. A linear layer over tokens whose
 * count shape inference could not tell (a class token added by Expand) is counted with
 * `unknownPositions` positions; the caller passes the image's pixel count, which bounds
 * the token count of patch-based models.
 */
export function tapBytesPerImage(layers: readonly Layer[], unknownPositions = 1): number {
  const perTap = new Map<string, number>();
  for (const l of layers) perTap.set(l.input, 4 * l.inChannels * (l.conv ? l.conv.inHW[0] * l.conv.inHW[1] : (l.positions ?? unknownPositions)));
  return [...perTap.values()].reduce((a, b) => a + b, 0);
}

/** The contribution batch: the caller's (default 256), lowered so that its taps fit the budget. */
export function contributionBatch(layers: readonly Layer[], requested = 256, unknownPositions = 1): number {
  return Math.max(1, Math.min(requested, Math.floor(TAP_BUDGET_BYTES / Math.max(1, tapBytesPerImage(layers, unknownPositions)))));
}

/** Valid input positions read by each kernel offset along one axis. */
function axisReads(inSize: number, outSize: number, kernel: number, stride: number, dilation: number, pad: number): Int32Array[] {
  const out: Int32Array[] = [];
  for (let k = 0; k < kernel; k++) {
    const list: number[] = [];
    for (let o = 0; o < outSize; o++) {
      const i = o * stride - pad + k * dilation;
      if (i >= 0 && i < inSize) list.push(i);
    }
    out.push(Int32Array.from(list));
  }
  return out;
}

/** Precomputed read positions of a convolution; reused for every sample. */
export interface ConvPlan {
  geometry: Conv2dWindow;
  rows: Int32Array[];
  cols: Int32Array[];
}

export function convPlan(geometry: Conv2dWindow): ConvPlan {
  const { kernel, stride, dilation, pad, inHW, outHW } = geometry;
  return {
    geometry,
    rows: axisReads(inHW[0], outHW[0], kernel[0], stride[0], dilation[0], pad[0]),
    cols: axisReads(inHW[1], outHW[1], kernel[1], stride[1], dilation[1], pad[1]),
  };
}

/**
 * T[i, k] for one sample: x is [C, H, W] (at `offset` in `data`), result [C, kh*kw].
 * The sum over output positions factorises into rows times columns, so each offset
 * costs one pass over the rows it reads instead of a pass per output position.
 */
export function windowSums(
  data: Float32Array,
  offset: number,
  channels: number,
  plan: ConvPlan,
  out = new Float64Array(channels * plan.rows.length * plan.cols.length),
): Float64Array {
  const [h, w] = plan.geometry.inHW;
  const kh = plan.rows.length;
  const kw = plan.cols.length;
  const acc = new Float64Array(w);
  for (let c = 0; c < channels; c++) {
    const base = offset + c * h * w;
    for (let a = 0; a < kh; a++) {
      acc.fill(0);
      for (const r of plan.rows[a]!) {
        const row = base + r * w;
        for (let x = 0; x < w; x++) acc[x]! += data[row + x]!;
      }
      for (let b = 0; b < kw; b++) {
        let s = 0;
        for (const col of plan.cols[b]!) s += acc[col]!;
        out[(c * kh + a) * kw + b] = s;
      }
    }
  }
  return out;
}

/** Adds one sample's conv contributions C[o, i] to v ([O, I/groups]). */
export function addConvContributions(t: Float64Array, layer: Layer, v: Float64Array): void {
  const { outChannels: o, groupIn: gi, k, w } = layer;
  const groups = layer.conv!.groups;
  const og = o / groups;
  for (let oc = 0; oc < o; oc++) {
    const g = Math.floor(oc / og);
    for (let il = 0; il < gi; il++) {
      const ti = (g * gi + il) * k;
      const wi = (oc * gi + il) * k;
      let s = 0;
      for (let j = 0; j < k; j++) s += t[ti + j]! * w[wi + j]!;
      if (s > 0) v[oc * gi + il]! += s;
    }
  }
}

/** Adds one sample's linear contributions relu(x_i W_oi) to v ([O, I]); x at `offset`. */
export function addLinearContributions(x: Float32Array, offset: number, layer: Layer, v: Float64Array): void {
  const { outChannels: o, inChannels: n, w } = layer;
  for (let oc = 0; oc < o; oc++) {
    const row = oc * n;
    for (let i = 0; i < n; i++) {
      const s = x[offset + i]! * w[row + i]!;
      if (s > 0) v[row + i]! += s;
    }
  }
}

/**
 * Layers whose contributions decide masks: every layer whose input channels are
 * followed, except those reading the image itself (the image is never masked).
 */
export function maskedLayers(cg: ChannelGraph): Layer[] {
  return cg.layers.filter((l) => l.input !== cg.input && l.inRef.kind !== 'untracked');
}

/**
 * Sums a linear layer's input over every position of one image (tokens, pixels of a
 * channels-last tensor): out[i] = sum over positions of x[b, ..., i, ...]. The relu in
 * C[b,o,i] = relu(W[o,i] * out[i]) then comes after the sum, as for convolutions.
 */
export function positionSums(data: Float32Array, dims: readonly number[], batchAxis: number, featureAxis: number, b: number, out: Float64Array): Float64Array {
  out.fill(0);
  const strides = dims.map((_, a) => dims.slice(a + 1).reduce((p, d) => p * d, 1));
  const n = dims[featureAxis]!;
  const fs = strides[featureAxis]!;
  // visit the image's elements: every index with batch = b
  const total = data.length / dims[batchAxis]!;
  const bs = strides[batchAxis]!;
  const outerB = bs * dims[batchAxis]!;
  for (let k = 0; k < total; k++) {
    const hi = Math.floor(k / bs);
    const lo = k % bs;
    const flat = hi * outerB + b * bs + lo;
    out[Math.floor(flat / fs) % n]! += data[flat]!;
  }
  return out;
}

/**
 * Streams `samples` ([dataset index, class] pairs, visited in the given order) through
 * the model and accumulates V for every layer of maskedLayers(cg).
 */
export async function accumulateContributions(
  cg: ChannelGraph,
  ds: Dataset,
  samples: readonly (readonly [number, number])[],
  opts: ContributionOptions,
): Promise<Map<string, LayerContributions>> {
  const layers = maskedLayers(cg);
  const classIndex = new Map(opts.classes.map((c, i) => [c, i]));
  const result = new Map<string, LayerContributions>();
  for (const layer of layers) {
    result.set(layer.node.name, {
      layer,
      values: opts.classes.map(() => new Float64Array(layer.outChannels * layer.groupIn)),
      samples: opts.classes.map(() => 0),
    });
  }
  const plans = new Map(layers.filter((l) => l.conv).map((l) => [l, convPlan(l.conv!)]));
  const taps = [...new Set(layers.map((l) => l.input))];
  const classOfIndex = new Map(samples.map(([i, c]) => [i, c]));
  const scratch = new Map<Layer, Float64Array<ArrayBuffer>>();
  for await (const { batch, outputs } of inferBatches(cg.model, ds, {
    ...opts.session,
    normalization: opts.normalization,
    indices: samples.map(([i]) => i),
    taps,
    batchSize: contributionBatch(layers, opts.batchSize, ds.shape[1]! * ds.shape[2]!),
    ...(opts.label ? { label: opts.label } : {}),
  })) {
    for (let b = 0; b < batch.size; b++) {
      const ci = classIndex.get(classOfIndex.get(batch.indices[b]!)!)!;
      for (const layer of layers) {
        const acc = result.get(layer.node.name)!;
        const x = outputs[layer.input]!;
        const data = x.data as Float32Array;
        const per = data.length / batch.size;
        if (layer.conv) {
          const plan = plans.get(layer)!;
          let t = scratch.get(layer);
          if (!t) scratch.set(layer, (t = new Float64Array(layer.inChannels * layer.k)));
          windowSums(data, b * per, layer.inChannels, plan, t);
          addConvContributions(t, layer, acc.values[ci]!);
        } else if (x.dims.length === 2 && layer.batchAxis === 0) {
          addLinearContributions(data, b * per, layer, acc.values[ci]!);
        } else {
          let t = scratch.get(layer);
          if (!t) scratch.set(layer, (t = new Float64Array(layer.inChannels)));
          positionSums(data, x.dims, layer.batchAxis, layer.inAxis, b, t);
          addLinearContributions(Float32Array.from(t), 0, layer, acc.values[ci]!);
        }
        acc.samples[ci]! += 1;
      }
    }
  }
  return result;
}
