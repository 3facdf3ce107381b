/**
 * CPU lowering of convolutions whose weights are computed at run time (training graphs
 * feed weights as graph inputs; input gradients convolve with transposed weights) to
 * ONNX Runtime's blocked-layout kernels (com.microsoft.nchwc ReorderInput, Conv,
 * ReorderOutput).
 *
 * Why: ORT's own NCHWc rewrite only fires for convolutions whose weights are constant
 * initializers, because it reorders the weights once at load time. A training step's
 * convolutions therefore fell back to the generic im2col path, 1.5-2x slower on small
 * feature maps (measured: bench/conv-grad.ts "forward, weights as input" vs "as
 * initializer"). Writing the weight reorder as graph nodes (two ReorderInputs and
 * Reshapes) lets the blocked kernel run with weights that change every step.
 *
 * Convolutions over small maps (output rows of 2-4 pixels, e.g. the last blocks of CIFAR-size
 * VGG and ResNet) also get the batch's images laid side by side along the width, so that
 * the blocked kernel runs long rows (widthStack).
 *
 * The lowering is applied only to the graph handed to ORT's CPU provider; the models
 * modelsmith writes, inspects and differentiates stay standard ONNX. The block size
 * is MLAS's (8 with AVX2, 16 with AVX-512) and is detected once per process by
 * comparing the blocked kernel with a plain Conv; where no size matches (e.g. an ORT
 * build without the NCHWc kernels) nothing is lowered.
 */
import * as ort from 'onnxruntime-node';
import type { Dim, Model, Node, Tensor } from '../onnx/types.js';
import { createModel, attrInt, attrInts, attrString, ints, int, tensorNames, uniqueName, isDefaultDomain } from '../onnx/graph.js';
import { encodeModel } from '../onnx/proto.js';
import { int64, numel } from '../onnx/tensor.js';
import { inferShapes } from '../onnx/shapes.js';
import { Rng } from '../util/random.js';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

const CANDIDATE_BLOCKS = [16, 8, 4] as const;
let detected: Promise<number | null> | undefined;

/** MLAS's NCHWc block size on this machine, or null where the blocked kernels are unavailable. */
export function nchwcBlockSize(): Promise<number | null> {
  detected ??= detect();
  return detected;
}

async function detect(): Promise<number | null> {
  const channels = 16;
  const rng = new Rng(7);
  const xDims = [1, channels, 5, 5];
  const wDims = [channels, channels, 3, 3];
  const x = Float32Array.from({ length: channels * 25 }, () => rng.uniform(-1, 1));
  const w = Float32Array.from({ length: channels * channels * 9 }, () => rng.uniform(-1, 1));
  const probe = (block: number | null): Model => {
    const g = createModel({
      name: 'nchwc_probe',
      nodes: [{ name: 'conv', opType: 'Conv', inputs: ['x', 'w'], outputs: ['y'], attributes: { pads: ints([1, 1, 1, 1]) } }],
      initializers: new Map(),
      inputs: [
        { name: 'x', dtype: 'float32', shape: xDims },
        { name: 'w', dtype: 'float32', shape: wDims },
      ],
      outputs: [{ name: 'y', dtype: 'float32', shape: [1, channels, 5, 5] }],
      valueInfo: new Map(),
    });
    return block === null
      ? g
      : lowerConvs(
          g,
          block,
          new Map([
            ['w', wDims],
            ['x', xDims],
          ]),
        );
  };
  const run = async (m: Model): Promise<Float32Array | null> => {
    try {
      const s = await ort.InferenceSession.create(encodeModel(m), { intraOpNumThreads: 1, graphOptimizationLevel: 'disabled' });
      const out = await s.run({ x: new ort.Tensor('float32', x, xDims), w: new ort.Tensor('float32', w, wDims) });
      await s.release();
      return out['y']!.data as Float32Array;
    } catch {
      return null;
    }
  };
  const reference = await run(probe(null));
  if (!reference) return null;
  for (const block of CANDIDATE_BLOCKS) {
    const y = await run(probe(block));
    if (y && y.every((v, i) => Math.abs(v - reference[i]!) <= 1e-4 * (1 + Math.abs(reference[i]!)))) return block;
  }
  return null;
}

/**
 * The model with every eligible Conv (2-D, one group, channel counts divisible by
 * `block`, weights not a constant initializer) replaced by its blocked form.
 * `shapes` may supply known shapes; otherwise they are inferred.
 */
export function lowerConvs(model: Model, block: number, shapes?: ReadonlyMap<string, readonly Dim[]>): Model {
  const g = model.graph;
  if (!g.nodes.some((n) => n.opType === 'Conv' && n.inputs[1] && !g.initializers.has(n.inputs[1]))) return model;
  const known = shapes ?? knownShapes(model);
  if (!known) return model;
  const taken = tensorNames(g);
  const fresh = (base: string): string => {
    const name = uniqueName(g, base, taken);
    taken.add(name);
    return name;
  };
  const initializers = new Map(g.initializers);
  const nodes: Node[] = [];
  // one blocked copy per input tensor: a ResNet block's input feeds conv1 and the downsample
  const blocked = new Map<string, string>();
  // one width-stacked copy per input tensor and gap
  const stacked = new Map<string, string>();
  const emit: Emit = {
    node: (n) => nodes.push(n),
    fresh,
    constant: (hint, values) => {
      const name = fresh(hint);
      initializers.set(name, int64([values.length], values));
      return name;
    },
  };
  let lowered = 0;
  for (const node of g.nodes) {
    const wShape = eligible(node, block, known, g.initializers);
    if (!wShape) {
      nodes.push(node);
      continue;
    }
    lowered++;
    const [o, c, kh, kw] = wShape;
    const [x, w, b] = node.inputs as [string, string, string | undefined];
    // MLAS's filter layout [O/B, I/B, kh, kw, Bi, Bo] by two ReorderInputs, MLAS's own
    // vectorised block transposes: [O, I, kh, kw] -> [O, I/B, kh, kw, Bi] (the input axis
    // blocked innermost), then that as [O/B, Bo, rest, 1] -> [O/B, rest, Bo]. One generic
    // 6-D Transpose did the same at ~1.3 GB/s (512x512x3x3: 7.4 ms vs 0.7-0.9 ms).
    const shapeBo = emit.constant(`${node.name}_nchwc_sbo`, [o / block, block, (c / block) * kh * kw * block, 1]);
    const shape4 = emit.constant(`${node.name}_nchwc_s4`, [o, c, kh, kw]);
    const stack = widthStack(node, known, wShape);
    let source = x;
    if (stack) {
      // the batch's images side by side along the width, shared by the convs that read x with the same gap
      const key = `${x}\u0000${stack.gap}`;
      source = stacked.get(key) ?? widen(emit, node.name, x, stack, c);
      stacked.set(key, source);
    }
    let xb = blocked.get(source);
    if (!xb) {
      xb = fresh(`${node.name}_nchwc_x`);
      blocked.set(source, xb);
      nodes.push({ name: fresh(`${node.name}_nchwc_in`), opType: 'ReorderInput', domain: NCHWC_DOMAIN, inputs: [source], outputs: [xb], attributes: {} });
    }
    const wi = fresh(`${node.name}_nchwc_wi`);
    const wo = fresh(`${node.name}_nchwc_wo`);
    const wob = fresh(`${node.name}_nchwc_wob`);
    const wb = fresh(`${node.name}_nchwc_w`);
    const yb = fresh(`${node.name}_nchwc_y`);
    const y = stack ? fresh(`${node.name}_nchwc_ywide`) : node.outputs[0]!;
    nodes.push(
      { name: fresh(`${node.name}_nchwc_wri`), opType: 'ReorderInput', domain: NCHWC_DOMAIN, inputs: [w], outputs: [wi], attributes: {} },
      { name: fresh(`${node.name}_nchwc_wrs`), opType: 'Reshape', inputs: [wi, shapeBo], outputs: [wo], attributes: {} },
      { name: fresh(`${node.name}_nchwc_wro`), opType: 'ReorderInput', domain: NCHWC_DOMAIN, inputs: [wo], outputs: [wob], attributes: {} },
      { name: fresh(`${node.name}_nchwc_w4r`), opType: 'Reshape', inputs: [wob, shape4], outputs: [wb], attributes: {} },
      {
        name: node.name,
        opType: 'Conv',
        domain: NCHWC_DOMAIN,
        inputs: b ? [xb, wb, b] : [xb, wb],
        outputs: [yb],
        attributes: convAttributes(node, [kh, kw], stack),
      },
      {
        name: fresh(`${node.name}_nchwc_out`),
        opType: 'ReorderOutput',
        domain: NCHWC_DOMAIN,
        inputs: [yb],
        outputs: [y],
        attributes: { channels: int(o) },
      },
    );
    if (stack) narrow(emit, node.name, y, node.outputs[0]!, stack, o);
  }
  if (lowered === 0) return model;
  const opsets = model.opsets.some((o) => o.domain === NCHWC_DOMAIN) ? model.opsets : [...model.opsets, { domain: NCHWC_DOMAIN, version: 1 }];
  return { ...model, opsets, graph: { ...g, nodes, initializers } };
}

/** Where the lowering's helpers put nodes, fresh names and int64 constants. */
interface Emit {
  node(n: Node): void;
  fresh(base: string): string;
  constant(hint: string, values: number[]): string;
}

/** [N, C, H, W] -> (Pad gap columns) -> [C, H, N, W + gap] -> [1, C, H, N pitch]: the input of a width-stacked conv. */
function widen(e: Emit, prefix: string, x: string, stack: WidthStack, c: number): string {
  let padded = x;
  if (stack.gap > 0) {
    padded = e.fresh(`${prefix}_nchwc_gap`);
    e.node({
      name: e.fresh(`${prefix}_nchwc_pad`),
      opType: 'Pad',
      inputs: [x, e.constant(`${prefix}_nchwc_gaps`, [0, 0, 0, 0, 0, 0, 0, stack.gap])],
      outputs: [padded],
      attributes: {},
    });
  }
  const rows = e.fresh(`${prefix}_nchwc_rows`);
  const wide = e.fresh(`${prefix}_nchwc_wide`);
  e.node({ name: e.fresh(`${prefix}_nchwc_side`), opType: 'Transpose', inputs: [padded], outputs: [rows], attributes: { perm: ints([1, 2, 0, 3]) } });
  const shape = e.constant(`${prefix}_nchwc_wshape`, [1, c, stack.h, stack.n * stack.pitch]);
  e.node({ name: e.fresh(`${prefix}_nchwc_widen`), opType: 'Reshape', inputs: [rows, shape], outputs: [wide], attributes: {} });
  return wide;
}

/** [1, O, Ho, N pitch] -> [O, Ho, N, pitch] -> (the first Wo columns of each image) -> [N, O, Ho, Wo] into `out`. */
function narrow(e: Emit, prefix: string, wide: string, out: string, stack: WidthStack, o: number): void {
  let images = e.fresh(`${prefix}_nchwc_images`);
  const shape = e.constant(`${prefix}_nchwc_ishape`, [o, stack.ho, stack.n, stack.pitch]);
  e.node({ name: e.fresh(`${prefix}_nchwc_split`), opType: 'Reshape', inputs: [wide, shape], outputs: [images], attributes: {} });
  if (stack.wo < stack.pitch) {
    const cropped = e.fresh(`${prefix}_nchwc_cropped`);
    const bounds = [e.constant(`${prefix}_nchwc_starts`, [0]), e.constant(`${prefix}_nchwc_ends`, [stack.wo]), e.constant(`${prefix}_nchwc_axes`, [3])];
    e.node({ name: e.fresh(`${prefix}_nchwc_crop`), opType: 'Slice', inputs: [images, ...bounds], outputs: [cropped], attributes: {} });
    images = cropped;
  }
  e.node({ name: e.fresh(`${prefix}_nchwc_unside`), opType: 'Transpose', inputs: [images], outputs: [out], attributes: { perm: ints([2, 0, 1, 3]) } });
}

/** Shapes where inference succeeds; the lowering is only an optimisation, so a graph it cannot analyse runs unlowered. */
function knownShapes(model: Model): Map<string, Dim[]> | undefined {
  try {
    return new Map([...inferShapes(model)].map(([k, v]) => [k, v.shape ?? []]));
  } catch {
    return undefined;
  }
}

/** The weight shape [O, C, kh, kw] of a Conv the blocked kernel can run, else undefined. */
function eligible(
  node: Node,
  block: number,
  known: ReadonlyMap<string, readonly Dim[]>,
  initializers: ReadonlyMap<string, Tensor>,
): [number, number, number, number] | undefined {
  if (node.opType !== 'Conv' || !isDefaultDomain(node.domain) || node.outputs.length !== 1) return undefined;
  const w = node.inputs[1];
  if (!w || initializers.has(w)) return undefined;
  if (attrInt(node, 'group', 1) !== 1) return undefined;
  const shape = known.get(w);
  if (!shape || shape.length !== 4 || !shape.every((d): d is number => typeof d === 'number')) return undefined;
  const xShape = known.get(node.inputs[0]!);
  if (!xShape || xShape.length !== 4) return undefined;
  const [o, c] = shape;
  if (o! % block !== 0 || c! % block !== 0) return undefined;
  return shape as [number, number, number, number];
}

function convAttributes(node: Node, kernel: number[], stack?: WidthStack): Node['attributes'] {
  const keep = ['auto_pad', 'dilations', 'pads', 'strides'];
  const out: Node['attributes'] = { kernel_shape: ints(kernel) };
  for (const k of keep) if (node.attributes[k]) out[k] = node.attributes[k]!;
  if (stack) out.pads = ints(stack.pads);
  return out;
}

/**
 * A convolution over small maps runs with the batch's images side by side along the
 * width, as one image [1, C, H, N x pitch], `gap` zero columns after each: MLAS's blocked
 * kernel works along output rows, and rows of 2-4 pixels leave most of its register tile
 * and its pad handling idle. With stride 1 along the width the gap columns stand for the
 * pads between images, so every output sums exactly the products it sums per image;
 * the new right pad makes the output N x pitch wide and each image's first Wo columns are
 * its output. Measured (training step's forward and input-gradient convs, batch 128, 2
 * threads, Intel Xeon): see STACK_MAX_WIDTH.
 */
interface WidthStack {
  n: number;
  h: number;
  ho: number;
  wo: number;
  gap: number;
  pitch: number;
  pads: number[];
}

/**
 * Which convolutions are stacked: output rows of at most STACK_MAX_WIDTH pixels, and
 * enough multiply-adds per value moved (STACK_MIN_INTENSITY: the stacking transposes
 * input and output once each). Per-node profile of training steps, batch 128, 2 threads,
 * Intel Xeon, forward + input gradient of one conv, ms, per image -> stacked: VGG-11
 * 512->512 at 2x2 47.7 -> 26.1 (x2 layers), 512->512 at 4x4 96.1 -> 79.4, 256->512 at
 * 4x4 (768 flops per byte) gains; ResNet-18 layer4 (512 at 4x4) 665 -> 569 over the
 * layer; ResNet(1,1,1,1) w0.25's 128->128 at 4x4 (288 flops per byte) lost, 10.1 -> 14.4.
 */
const STACK_MAX_WIDTH = 4;
const STACK_MIN_INTENSITY = 640;

function widthStack(node: Node, known: ReadonlyMap<string, readonly Dim[]>, weight: readonly number[]): WidthStack | undefined {
  if (attrString(node, 'auto_pad', 'NOTSET') !== 'NOTSET') return undefined;
  const x = known.get(node.inputs[0]!),
    y = known.get(node.outputs[0]!);
  if (!x || !y || ![...x, ...y].every((d): d is number => typeof d === 'number')) return undefined;
  const [n, , h, w] = x as number[];
  const [, , ho, wo] = y as number[];
  if (n! < 2 || wo! > STACK_MAX_WIDTH) return undefined;
  const flops = 2 * numel(y as number[]) * numel(weight.slice(1));
  if (flops < STACK_MIN_INTENSITY * 4 * (numel(x as number[]) + numel(y as number[]))) return undefined;
  const strides = attrInts(node, 'strides', [1, 1]);
  const dilations = attrInts(node, 'dilations', [1, 1]);
  const pads = attrInts(node, 'pads', [0, 0, 0, 0]);
  if (strides[1] !== 1 || pads.length !== 4) return undefined;
  const reach = dilations[1]! * (weight[3]! - 1);
  const [top, left, bottom, right] = pads as [number, number, number, number];
  const gap = Math.max(left, right);
  const pitch = w! + gap;
  if (left > reach || wo !== w! + left + right - reach || wo! > pitch) return undefined;
  // output width (N pitch + left + newRight - reach) = N pitch
  return { n: n!, h: h!, ho: ho!, wo: wo!, gap, pitch, pads: [top, left, bottom, reach - left] };
}
