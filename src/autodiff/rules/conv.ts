/**
 * Gradients of Conv. Input and weight gradients each have equivalent formulations whose
 * speed in ONNX Runtime differs a lot (up to 5x), so they are all here and
 * bench/conv-grad.ts measures them; the rule emits the ones that measured fastest for
 * the convolution's shape (chooseInputGradMethod, chooseWeightGradMethod).
 */
import type { Attribute } from '../../onnx/types.js';
import type { Emitter, GradContext, GradRule } from '../types.js';
import { intsConstant, reshape } from '../grad.js';
import { attrInt, attrInts, attrString, int, ints } from '../../onnx/graph.js';
import { float32, numel } from '../../onnx/tensor.js';
import { autoPadProblem, axisPads } from '../../onnx/dims.js';
import { UserError } from '../../util/errors.js';

/** A convolution's shapes and window attributes, with auto_pad resolved to explicit pads. */
export interface ConvGeometry {
  /** [N, C, ...spatial] */
  x: number[];
  /** [Cout, C / group, ...kernel] */
  w: number[];
  /** [N, Cout, ...out] */
  y: number[];
  group: number;
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
}

/** Window attributes of a Conv/pool node over `spatial`, auto_pad resolved. */
export function windowAttrs(node: GradContext['node'], spatial: readonly number[], kernel: readonly number[]): Omit<ConvGeometry, 'x' | 'w' | 'y' | 'group'> {
  const r = spatial.length;
  const strides = attrInts(node, 'strides', new Array<number>(r).fill(1));
  const dilations = attrInts(node, 'dilations', new Array<number>(r).fill(1));
  const pads = attrInts(node, 'pads', new Array<number>(2 * r).fill(0));
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  if (strides.length !== r || dilations.length !== r || pads.length !== 2 * r || kernel.length !== r) {
    throw new UserError(`node ${node.name} (${node.opType}): strides/dilations/pads/kernel do not match the ${r} spatial axes of its input`);
  }
  const problem = autoPadProblem(autoPad);
  if (problem) throw new UserError(`node ${node.name} (${node.opType}): ${problem}`);
  const resolved = spatial.map((s, i) => axisPads(autoPad, s, kernel[i]!, strides[i]!, dilations[i]!, [pads[i]!, pads[i + r]!])!);
  const padsBegin = resolved.map((p) => p[0]);
  const padsEnd = resolved.map((p) => p[1]);
  return { strides, dilations, padsBegin, padsEnd };
}

export function convGeometry(ctx: Pick<GradContext, 'node' | 'shape'>): ConvGeometry {
  const { node } = ctx;
  const x = ctx.shape(node.inputs[0]!);
  const w = ctx.shape(node.inputs[1]!);
  const y = ctx.shape(node.outputs[0]!);
  if (x.length < 3 || w.length !== x.length) {
    throw new UserError(`node ${node.name} (Conv): input ${JSON.stringify(x)} and weight ${JSON.stringify(w)} should both be [N, C, spatial...] of one rank`);
  }
  return { x, w, y, group: attrInt(node, 'group', 1), ...windowAttrs(node, x.slice(2), w.slice(2)) };
}

function transpose(e: Emitter, x: string, perm: number[], hint: string): string {
  return e.emit('Transpose', [x], { perm: ints(perm) }, 1, hint)[0]!;
}

function reduceSum(e: Emitter, x: string, axes: number[], keepdims: boolean, hint: string): string {
  return e.emit('ReduceSum', [x, intsConstant(e, axes, `${hint}_axes`)], { keepdims: int(keepdims ? 1 : 0) }, 1, hint)[0]!;
}

function slice(e: Emitter, x: string, starts: number[], ends: number[], axes: number[], steps: number[], hint: string): string {
  const c = (v: number[], n: string): string => intsConstant(e, v, `${hint}_${n}`);
  return e.emit('Slice', [x, c(starts, 'starts'), c(ends, 'ends'), c(axes, 'axes'), c(steps, 'steps')], {}, 1, hint)[0]!;
}

const spatialOf = (dims: readonly number[]): number[] => dims.slice(2);

/**
 * The input-gradient formulations: 'conv-transpose' works for every geometry;
 * 'flipped-conv' (stride 1 only) is a plain Conv of dY with the weights transposed and
 * flipped, which ONNX Runtime runs faster than ConvTranspose (bench/conv-grad.ts);
 * 'stacked-conv-transpose' is one ConvTranspose over the batch's images stacked along
 * the first spatial axis (stackedLayout), for small maps.
 */
export type InputGradMethod = 'conv-transpose' | 'flipped-conv' | 'stacked-conv-transpose';
export const INPUT_GRAD_METHODS: readonly InputGradMethod[] = ['conv-transpose', 'flipped-conv', 'stacked-conv-transpose'];

export function convInputGrad(e: Emitter, g: ConvGeometry, dy: string, w: string, method: InputGradMethod = 'conv-transpose', hint = 'conv_dx'): string {
  if (method === 'flipped-conv' && flippedPads(g)) return inputGradByFlippedConv(e, g, dy, w, hint);
  const stack = method === 'stacked-conv-transpose' ? stackedLayout(g) : undefined;
  return stack ? inputGradByStackedConvTranspose(e, g, dy, w, stack, hint) : inputGradByConvTranspose(e, g, dy, w, hint);
}

/** ConvTranspose attributes mapping dY back onto X: the forward window; output_padding restores the input size the forward's floor division lost (always below the stride). */
function transposeAttrs(g: ConvGeometry): Record<string, Attribute> {
  const kernel = spatialOf(g.w);
  const outPad = spatialOf(g.x).map((size, i) => {
    const produced = g.strides[i]! * (g.y[i + 2]! - 1) + (kernel[i]! - 1) * g.dilations[i]! + 1 - g.padsBegin[i]! - g.padsEnd[i]!;
    return size - produced;
  });
  const attrs: Record<string, Attribute> = {
    kernel_shape: ints(kernel),
    strides: ints(g.strides),
    dilations: ints(g.dilations),
    pads: ints([...g.padsBegin, ...g.padsEnd]),
    group: int(g.group),
  };
  if (outPad.some((p) => p !== 0)) attrs.output_padding = ints(outPad);
  return attrs;
}

/** dX = ConvTranspose(dY, W) with the forward window. */
function inputGradByConvTranspose(e: Emitter, g: ConvGeometry, dy: string, w: string, hint: string): string {
  return e.emit('ConvTranspose', [dy, w], transposeAttrs(g), 1, hint)[0]!;
}

/**
 * How the images of a batch stack along the first spatial axis for one ConvTranspose:
 * `gap` zero rows after each image of dY, so that each image's dX rows start `pitch` rows
 * after the previous one's; the new end pad and output_padding of that axis make the
 * output exactly N x pitch rows. ONNX Runtime runs a ConvTranspose as one product per
 * image (K = dY's positions): on small maps those products are thin and the stacked one
 * is not (bench/conv-grad.ts). Undefined where the forward pads exceed the kernel's reach.
 */
export interface StackedLayout {
  gap: number;
  pitch: number;
  padEnd: number;
  outputPadding: number;
}

export function stackedLayout(g: ConvGeometry): StackedLayout | undefined {
  const s = g.strides[0]!,
    ho = g.y[2]!,
    hi = g.x[2]!,
    top = g.padsBegin[0]!;
  const reach = (g.w[2]! - 1) * g.dilations[0]!;
  if (top > reach) return undefined;
  // the next image's rows above its top pad must land below this image's hi rows (gap
  // * s >= hi + top - ho * s), and this image's rows past its end before the next one's
  // first row (s * (gap + 1) > reach - top)
  let gap = 0;
  while (s * (ho + gap) < hi + top || s * (gap + 1) <= reach - top) gap++;
  // rows of the ConvTranspose output, s * (rows - 1) + reach + 1 - top - padEnd + outputPadding, equal to N * pitch
  const v = s - reach - 1 + top;
  return { gap, pitch: s * (ho + gap), padEnd: Math.max(0, -v), outputPadding: Math.max(0, v) };
}

/**
 * dX by one ConvTranspose over dY's images stacked along the first spatial axis:
 * [N, Cout, Ho, ...] -> (Pad gap rows) -> [Cout, N, Ho + gap, ...] -> [1, Cout, N (Ho +
 * gap), ...] -> ConvTranspose -> [1, C, N pitch, ...] -> [C, N, pitch, ...] -> (Slice Hi
 * rows) -> [N, C, Hi, ...]. Exact: every dX value sums the same products as the per-image
 * ConvTranspose, the gaps only add zeros.
 */
function inputGradByStackedConvTranspose(e: Emitter, g: ConvGeometry, dy: string, w: string, stack: StackedLayout, hint: string): string {
  const [n, cout, ho, ...restY] = g.y as [number, number, number, ...number[]];
  const [, cin, hi, ...restX] = g.x as [number, number, number, ...number[]];
  const rank = g.y.length;
  const swap = [1, 0, ...g.y.slice(2).map((_, i) => i + 2)];
  let rows = dy;
  if (stack.gap > 0) {
    const pads = new Array<number>(2 * rank).fill(0);
    pads[rank + 2] = stack.gap;
    rows = e.emit('Pad', [dy, intsConstant(e, pads, `${hint}_gap`)], {}, 1, `${hint}_pad`)[0]!;
  }
  const stacked = reshape(e, transpose(e, rows, swap, `${hint}_cn`), [1, cout, n * (ho + stack.gap), ...restY], `${hint}_stack`);
  const attrs = transposeAttrs(g);
  const r = rank - 2;
  const pads = [...g.padsBegin, ...g.padsEnd];
  pads[r] = stack.padEnd;
  const outPad = (attrs.output_padding?.value as number[] | undefined) ?? new Array<number>(r).fill(0);
  attrs.pads = ints(pads);
  attrs.output_padding = ints([stack.outputPadding, ...outPad.slice(1)]);
  const out = e.emit('ConvTranspose', [stacked, w], attrs, 1, `${hint}_stacked`)[0]!;
  let images = reshape(e, out, [cin, n, stack.pitch, ...restX], `${hint}_images`);
  if (stack.pitch > hi) images = slice(e, images, [0], [hi], [2], [1], `${hint}_crop`);
  return transpose(e, images, swap, hint);
}

/**
 * Pads of the stride-1 Conv that maps dY back onto X: the kernel's reach minus the
 * forward pads. Undefined when the convolution is strided or a pad would be negative
 * (forward pads wider than the kernel's reach).
 */
function flippedPads(g: ConvGeometry): number[] | undefined {
  if (g.strides.some((s) => s !== 1)) return undefined;
  const reach = spatialOf(g.w).map((k, i) => (k - 1) * g.dilations[i]!);
  const pads = [...reach.map((r, i) => r - g.padsBegin[i]!), ...reach.map((r, i) => r - g.padsEnd[i]!)];
  return pads.every((p) => p >= 0) ? pads : undefined;
}

/**
 * dX = Conv(dY, W'), W' = W with in/out channels swapped per group and every spatial axis
 * reversed. Reversing every spatial axis reverses each filter's K = prod(kernel) values
 * in row-major order, done here as a MatMul of W as [Cout, C/G, K] with the K x K
 * anti-diagonal permutation (exact: each output is one weight times 1 plus zeros) and
 * not as a Slice with negative steps, which ORT runs element by element (512x512x3x3:
 * 6.4 ms vs 0.4 ms).
 */
function inputGradByFlippedConv(e: Emitter, g: ConvGeometry, dy: string, w: string, hint: string): string {
  const [cout, cig] = g.w as [number, number];
  const kernel = spatialOf(g.w);
  const k = numel(kernel);
  const G = g.group;
  const w3 = reshape(e, w, [cout, cig, k], `${hint}_w3`);
  let flipped = w3;
  if (k > 1) {
    const anti = new Float32Array(k * k);
    for (let i = 0; i < k; i++) anti[i * k + (k - 1 - i)] = 1;
    flipped = e.emit('MatMul', [w3, e.addConstant(float32([k, k], anti), `${hint}_reverse`)], {}, 1, `${hint}_wflip`)[0]!;
  }
  const swapped =
    G === 1
      ? transpose(e, flipped, [1, 0, 2], `${hint}_wt`)
      : transpose(e, reshape(e, flipped, [G, cout / G, cig, k], `${hint}_wf4`), [0, 2, 1, 3], `${hint}_wt`);
  return e.emit(
    'Conv',
    [dy, reshape(e, swapped, [G * cig, cout / G, ...kernel], `${hint}_w`)],
    {
      kernel_shape: ints(kernel),
      dilations: ints(g.dilations),
      pads: ints(flippedPads(g)!),
      group: int(G),
    },
    1,
    hint,
  )[0]!;
}

/** Bias gradient: sum of dY over batch and space. */
export function convBiasGrad(e: Emitter, g: ConvGeometry, dy: string, hint = 'conv_db'): string {
  const axes = [0, ...spatialOf(g.y).map((_, i) => i + 2)];
  return reduceSum(e, dy, axes, false, hint);
}

/**
 * The weight-gradient formulations bench/conv-grad.ts compares:
 * - 'transposed-conv': a Conv over batch-transposed tensors (the batch becomes the
 *   channel axis, dY becomes the weight; stride and dilation swap roles);
 * - 'patch-matmul': im2col by a one-hot depthwise Conv, then a MatMul with dY batched
 *   over the images and a sum over the batch;
 * - 'patch-gemm': the same patches transposed so that one Gemm contracts batch and
 *   space together (no batch sum, but a transpose of the patches);
 * - 'slice-matmul': im2col by Slices of the padded input, then the same MatMul;
 * - 'gather-gemm': the patches gathered from X laid out batch-innermost, already in the
 *   layout one Gemm contracts (weightGradByGather).
 */
export type WeightGradMethod = 'transposed-conv' | 'patch-matmul' | 'patch-gemm' | 'slice-matmul' | 'split-shift' | 'gather-gemm';
export const WEIGHT_GRAD_METHODS: readonly WeightGradMethod[] = ['transposed-conv', 'patch-matmul', 'patch-gemm', 'slice-matmul', 'split-shift', 'gather-gemm'];

export function convWeightGrad(e: Emitter, g: ConvGeometry, x: string, dy: string, method: WeightGradMethod, hint = 'conv_dw'): string {
  switch (method) {
    case 'transposed-conv':
      return weightGradByConv(e, g, x, dy, hint);
    case 'patch-matmul':
      return weightGradByPatches(e, g, dy, patchesByConv(e, g, x, hint), hint);
    case 'patch-gemm':
      return weightGradByJointGemm(e, g, dy, patchesByConv(e, g, x, hint), hint);
    case 'slice-matmul':
      return weightGradByPatches(e, g, dy, patchesBySlices(e, g, x, hint), hint);
    case 'split-shift':
      return splitShiftApplies(g) ? weightGradBySplitShifts(e, g, x, dy, hint) : convWeightGrad(e, g, x, dy, 'patch-matmul', hint);
    case 'gather-gemm':
      return g.group === 1 ? weightGradByGather(e, g, x, dy, hint) : convWeightGrad(e, g, x, dy, 'patch-gemm', hint);
  }
}

/**
 * dW[o, c, k] = sum over n, p of X[n, c, p*s + k*d - pad] dY[n, o, p]: a convolution of
 * X with channel and batch axes swapped, by dY likewise swapped, with stride d and
 * dilation s. Groups ride along as groups of the swapped convolution: the channel axis
 * of each group's input holds that group's batch.
 */
function weightGradByConv(e: Emitter, g: ConvGeometry, x: string, dy: string, hint: string): string {
  const [n, cin] = g.x as [number, number];
  const cout = g.w[0]!;
  const G = g.group;
  const cig = cin / G;
  const cog = cout / G;
  const xs = spatialOf(g.x);
  const ys = spatialOf(g.y);
  const kernel = spatialOf(g.w);
  const sp = xs.map((_, i) => i + 2);
  let xt: string;
  let dyt: string;
  if (G === 1) {
    xt = transpose(e, x, [1, 0, ...sp], `${hint}_xt`);
    dyt = transpose(e, dy, [1, 0, ...sp], `${hint}_dyt`);
  } else {
    const sp5 = sp.map((a) => a + 1);
    const x5 = reshape(e, x, [n, G, cig, ...xs], `${hint}_x5`);
    xt = reshape(e, transpose(e, x5, [2, 1, 0, ...sp5], `${hint}_xt5`), [cig, G * n, ...xs], `${hint}_xt`);
    const dy5 = reshape(e, dy, [n, G, cog, ...ys], `${hint}_dy5`);
    dyt = reshape(e, transpose(e, dy5, [1, 2, 0, ...sp5], `${hint}_dyt5`), [cout, n, ...ys], `${hint}_dyt`);
  }
  // End pads trimmed so the swapped convolution yields exactly the kernel's extent
  // where it can; a negative trim (input rows the forward never read) is sliced instead.
  const padsEnd = xs.map((size, i) => Math.max(0, (kernel[i]! - 1) * g.dilations[i]! + (ys[i]! - 1) * g.strides[i]! + 1 - size - g.padsBegin[i]!));
  const outSizes = xs.map((size, i) => Math.floor((size + g.padsBegin[i]! + padsEnd[i]! - (ys[i]! - 1) * g.strides[i]! - 1) / g.dilations[i]!) + 1);
  let dwt = e.emit(
    'Conv',
    [xt, dyt],
    {
      kernel_shape: ints(ys),
      strides: ints(g.dilations),
      dilations: ints(g.strides),
      pads: ints([...g.padsBegin, ...padsEnd]),
      group: int(G),
    },
    1,
    `${hint}_conv`,
  )[0]!;
  if (outSizes.some((s, i) => s !== kernel[i])) {
    dwt = slice(
      e,
      dwt,
      kernel.map(() => 0),
      kernel,
      sp,
      kernel.map(() => 1),
      `${hint}_crop`,
    );
  }
  return transpose(e, dwt, [1, 0, ...sp], hint);
}

/**
 * dW[o, (c, k)] = A[o, (l, n)] . B[(c, k), (l, n)] in one Gemm, with A = dY as [O, L, N]
 * and B = the patches gathered from the padded X laid out [C, positions, N]: each
 * gathered element is a run of N contiguous values (a batch's worth), so the Gather
 * copies blocks instead of single values, and the patches come out in the layout the
 * Gemm contracts, with no transpose of the patches and no batch sum. The price is two
 * transposes to batch-innermost layout (X and dY, each once).
 */
function weightGradByGather(e: Emitter, g: ConvGeometry, x: string, dy: string, hint: string): string {
  const [n, cin] = g.x as [number, number];
  const cout = g.w[0]!;
  const xs = spatialOf(g.x);
  const ys = spatialOf(g.y);
  const kernel = spatialOf(g.w);
  const padded = xs.map((size, i) => size + g.padsBegin[i]! + g.padsEnd[i]!);
  const inner = xs.map((_, i) => i + 2);
  const xt = reshape(e, transpose(e, padInput(e, g, x, hint), [1, ...inner, 0], `${hint}_xt`), [cin, numel(padded), n], `${hint}_x3`);
  // index of padded position (p_i * stride_i + k_i * dilation_i) for every kernel tap k and output position p, both row-major
  const taps = numel(kernel);
  const outs = numel(ys);
  const positions = kernelOffsets(ys);
  const index = kernelOffsets(kernel).flatMap((k) =>
    positions.map((p) => p.reduce((flat, pi, i) => flat * padded[i]! + pi * g.strides[i]! + k[i]! * g.dilations[i]!, 0)),
  );
  const gathered = e.emit('Gather', [xt, intsConstant(e, index, `${hint}_taps`)], { axis: int(1) }, 1, `${hint}_gather`)[0]!;
  const b = reshape(e, gathered, [cin * taps, outs * n], `${hint}_b`);
  const a = reshape(e, transpose(e, dy, [1, ...inner, 0], `${hint}_dyt`), [cout, outs * n], `${hint}_a`);
  const prod = e.emit('Gemm', [a, b], { transB: int(1) }, 1, `${hint}_gemm`)[0]!;
  return reshape(e, prod, g.w, hint);
}

/** [N, C*K, L] patches (K = kernel positions, L = output positions), channel-major. */
function patchesByConv(e: Emitter, g: ConvGeometry, x: string, hint: string): string {
  const cin = g.x[1]!;
  const kernel = spatialOf(g.w);
  const k = numel(kernel);
  if (isPointwise(g)) return reshape(e, x, [g.x[0]!, cin, numel(spatialOf(g.x))], `${hint}_patches`);
  const onehot = new Float32Array(cin * k * k);
  for (let c = 0; c < cin; c++) for (let j = 0; j < k; j++) onehot[(c * k + j) * k + j] = 1;
  const w = e.addConstant(float32([cin * k, 1, ...kernel], onehot), `${hint}_onehot`);
  const p = e.emit(
    'Conv',
    [x, w],
    {
      kernel_shape: ints(kernel),
      strides: ints(g.strides),
      dilations: ints(g.dilations),
      pads: ints([...g.padsBegin, ...g.padsEnd]),
      group: int(cin),
    },
    1,
    `${hint}_im2col`,
  )[0]!;
  return reshape(e, p, [g.x[0]!, cin * k, numel(spatialOf(g.y))], `${hint}_patches`);
}

/** The same patches from one strided Slice of the padded input per kernel position. */
function patchesBySlices(e: Emitter, g: ConvGeometry, x: string, hint: string): string {
  const [n, cin] = g.x as [number, number];
  const kernel = spatialOf(g.w);
  const ys = spatialOf(g.y);
  const l = numel(ys);
  if (isPointwise(g)) return reshape(e, x, [n, cin, l], `${hint}_patches`);
  const sp = ys.map((_, i) => i + 2);
  const padded = padInput(e, g, x, hint);
  const slices: string[] = [];
  for (const offset of kernelOffsets(kernel)) {
    const starts = offset.map((o, i) => o * g.dilations[i]!);
    const ends = starts.map((s, i) => s + (ys[i]! - 1) * g.strides[i]! + 1);
    const s = slice(e, padded, starts, ends, sp, g.strides, `${hint}_slice`);
    slices.push(reshape(e, s, [n, cin, 1, l], `${hint}_slice4`));
  }
  const cat = e.emit('Concat', slices, { axis: int(2) }, 1, `${hint}_im2col`)[0]!;
  return reshape(e, cat, [n, cin * numel(kernel), l], `${hint}_patches`);
}

/** X with the forward's pads as zeros (X itself where there are none): the frame the patch formulations index. */
function padInput(e: Emitter, g: ConvGeometry, x: string, hint: string): string {
  if (![...g.padsBegin, ...g.padsEnd].some((p) => p > 0)) return x;
  const pads = intsConstant(e, [0, 0, ...g.padsBegin, 0, 0, ...g.padsEnd], `${hint}_pads`);
  return e.emit('Pad', [x, pads], { mode: { kind: 'string', value: 'constant' } }, 1, `${hint}_pad`)[0]!;
}

/** All kernel positions (or any grid's), row-major (the order of the weight's spatial axes). */
function kernelOffsets(kernel: readonly number[]): number[][] {
  let out: number[][] = [[]];
  for (const k of kernel) out = out.flatMap((o) => Array.from({ length: k }, (_, i) => [...o, i]));
  return out;
}

/** A 1x1 convolution that reads every input position: its patches are the input itself. */
function isPointwise(g: ConvGeometry): boolean {
  return spatialOf(g.w).every((k) => k === 1) && g.strides.every((s) => s === 1) && g.padsBegin.every((p) => p === 0) && g.padsEnd.every((p) => p === 0);
}

/** dY as [N, G, Cout/G, L] and the patches as [N, G, C/G * k, L], the operands of both patch formulations, with their sizes. */
function perGroup(e: Emitter, g: ConvGeometry, dy: string, patches: string, hint: string) {
  const n = g.x[0]!;
  const G = g.group;
  const cog = g.w[0]! / G;
  const ck = numel(g.w.slice(1));
  const l = numel(spatialOf(g.y));
  return { n, G, cog, ck, l, dy4: reshape(e, dy, [n, G, cog, l], `${hint}_dy4`), p4: reshape(e, patches, [n, G, ck, l], `${hint}_p4`) };
}

/** dW[g, o, ck] = sum over n, l of dY[n, g, o, l] P[n, g, ck, l]: one batched MatMul, then a sum over n. */
function weightGradByPatches(e: Emitter, g: ConvGeometry, dy: string, patches: string, hint: string): string {
  const { dy4, p4 } = perGroup(e, g, dy, patches, hint);
  const pt = transpose(e, p4, [0, 1, 3, 2], `${hint}_pt`);
  const prod = e.emit('MatMul', [dy4, pt], {}, 1, `${hint}_mm`)[0]!;
  const sum = reduceSum(e, prod, [0], false, `${hint}_sum`);
  return reshape(e, sum, g.w, hint);
}

/**
 * Where 'split-shift' applies: 2-D, one group, stride 1, a kernel of at least two rows
 * and two columns (with one of either it is plain im2col with an extra copy).
 */
export function splitShiftApplies(g: ConvGeometry): boolean {
  const kernel = spatialOf(g.w);
  return kernel.length === 2 && g.group === 1 && g.strides.every((s) => s === 1) && kernel.every((k) => k >= 2);
}

/**
 * `taps` shifted copies of every channel of `x` by a depthwise Conv with one-hot kernels
 * (channel c's copy j is output channel c * taps + j), written once by the Conv. The
 * kernel's taps lie along one axis (`kernel` is [taps, 1] or [1, taps]); `reverse`
 * puts copy j's one at tap taps - 1 - j.
 */
function shiftedCopies(e: Emitter, x: string, channels: number, kernel: number[], dilations: number[], pads: number[], reverse: boolean, hint: string): string {
  const taps = numel(kernel);
  const onehot = new Float32Array(channels * taps * taps);
  for (let c = 0; c < channels; c++) for (let j = 0; j < taps; j++) onehot[(c * taps + j) * taps + (reverse ? taps - 1 - j : j)] = 1;
  const w = e.addConstant(float32([channels * taps, 1, ...kernel], onehot), `${hint}_onehot`);
  return e.emit('Conv', [x, w], { kernel_shape: ints(kernel), dilations: ints(dilations), pads: ints(pads), group: int(channels) }, 1, hint)[0]!;
}

/**
 * dW by shifting X along the width and dY along the height (stride 1, one group; see
 * splitShiftApplies). With kernel kh x kw, dilation (dh, dw) and R = Ho + (kh - 1) dh
 * frame rows per image:
 *   P[n, (c, j), r, x] = Xpad[n, c, r, x + j dw]        (kw copies of X, rows r < R)
 *   Q[n, (o, i), r, x] = dY[n, o, r - i dh, x]           (kh copies of dY, 0 outside)
 *   sum over r, x of Q P = sum over y, x of dY[y, x] Xpad[y + i dh, x + j dw] = dW[o, c, i, j]
 * so one MatMul per image over the R x Wo frame positions, summed over the batch, gives
 * every (i, j) at once. The copies hold (kw C + kh O) R Wo values per image where im2col's
 * patches hold kh kw C Ho Wo: 2/3 of them for a 3x3 kernel with C = O, and the Conv that
 * writes each copy has a third of the taps (0.70-0.82x the time of patch-matmul on 14x14
 * to 32x32 maps with one session each; bench/conv-grad.ts, interleaved: 0.68-0.91x). The
 * frame's (kh - 1) dh extra rows cost that share of extra products, which is why small
 * maps keep patch-matmul.
 */
function weightGradBySplitShifts(e: Emitter, g: ConvGeometry, x: string, dy: string, hint: string): string {
  const [n, cin, h] = g.x as [number, number, number, number];
  const [cout, , kh, kw] = g.w as [number, number, number, number];
  const [, , ho, wo] = g.y as [number, number, number, number];
  const [dh, dw] = g.dilations as [number, number];
  const [pt, pl] = g.padsBegin as [number, number];
  const pr = g.padsEnd[1]!;
  const rows = ho + (kh - 1) * dh;
  // stride 1: rows - h - pt is the forward's end pad, never negative
  const p = shiftedCopies(e, x, cin, [1, kw], [1, dw], [pt, pl, rows - h - pt, pr], false, `${hint}_xshift`);
  const q = shiftedCopies(e, dy, cout, [kh, 1], [dh, 1], [(kh - 1) * dh, 0, (kh - 1) * dh, 0], true, `${hint}_dyshift`);
  const p3 = reshape(e, p, [n, cin * kw, rows * wo], `${hint}_p3`);
  const qt = transpose(e, reshape(e, q, [n, cout * kh, rows * wo], `${hint}_q3`), [0, 2, 1], `${hint}_qt`);
  const prod = e.emit('MatMul', [p3, qt], {}, 1, `${hint}_mm`)[0]!;
  const sum = reshape(e, reduceSum(e, prod, [0], false, `${hint}_sum`), [cin, kw, cout, kh], `${hint}_sum4`);
  return transpose(e, sum, [2, 0, 3, 1], hint);
}

/** dW[g, o, ck] = dY[g, o, (n l)] . P[g, ck, (n l)]^T: batch and space contracted in one product. */
function weightGradByJointGemm(e: Emitter, g: ConvGeometry, dy: string, patches: string, hint: string): string {
  const { n, G, cog, ck, l, dy4, p4 } = perGroup(e, g, dy, patches, hint);
  const dyt = transpose(e, dy4, [1, 2, 0, 3], `${hint}_dyt`);
  const pt = transpose(e, p4, [1, 2, 0, 3], `${hint}_pt`);
  const a = reshape(e, dyt, [G, cog, n * l], `${hint}_a`);
  const b = reshape(e, pt, [G, ck, n * l], `${hint}_b`);
  const prod =
    G === 1
      ? e.emit('Gemm', [reshape(e, a, [cog, n * l], `${hint}_a2`), reshape(e, b, [ck, n * l], `${hint}_b2`)], { transB: int(1) }, 1, `${hint}_gemm`)[0]!
      : e.emit('MatMul', [a, transpose(e, b, [0, 2, 1], `${hint}_bt`)], {}, 1, `${hint}_mm`)[0]!;
  return reshape(e, prod, g.w, hint);
}

/**
 * Where 'transposed-conv' wins: a 2-D convolution with one group and a kernel wider than
 * 1x1 whose dY fits in a core's cache. The swapped convolution runs through ORT's NCHWc
 * kernel with dY as its weight, which that kernel reads again for every input channel
 * and output row: from cache that costs about what the forward costs, from memory far
 * more. In the training step of ResNet(1,1,1,1) w0.25 at batch 128 (2 threads, Intel
 * Xeon, per-node profile; times relative to the layer's own forward): 64->64 at 7x7
 * (dY 1.6 MB) 2.4x vs 4.3x for patch-matmul, 128->128 at 4x4 (1.0 MB) 1.95x vs 3.3x
 * for patch-gemm, the stride-2 3x3s into 7x7 and 4x4 3.2x / 2.3x vs 4.7x / 3.8x; with dY
 * at 3.2 MB (32->32 at 14x14) it only ties split-shift, at 6.4 MB (16->16 at 28x28) it
 * loses (3.05x vs 2.75x); VGG-11's 512->512 at 2x2 (1.0 MB): 16-17 ms vs 36-47 ms for
 * patch-gemm (forward 23-24 ms); ResNet-18's 4.2 and 8.4 MB cases tie or lose. 1x1
 * convolutions keep patch-matmul: their patches are X itself. Measured on an Intel Xeon
 * (1.25 MB of L2 per core); the AMD EPYC of earlier sessions (1 MB) was not available.
 */
const TRANSPOSED_CONV_DY_BYTES = 2 * 1024 * 1024;

function transposedConvFits(g: ConvGeometry): boolean {
  const kernel = spatialOf(g.w);
  return kernel.length === 2 && g.group === 1 && numel(kernel) > 1 && 4 * numel(g.y) <= TRANSPOSED_CONV_DY_BYTES;
}

/**
 * Where 'gather-gemm' wins: one group, maps of at most GATHER_MAX_POSITIONS outputs and
 * at least GATHER_MIN_CHANNELS on both sides, so that its one Gemm is large on every
 * axis. bench/conv-grad.ts, batch 128, 2 threads, Intel Xeon, ms (the rule's previous
 * pick in brackets): 512->512 at 4x4 48.5 (patch-gemm 70.4), at 2x2 13.4
 * (transposed-conv 22.9), 256->256 at 8x8 59.3 (patch-matmul 74.3), 256->512 at 8x8
 * s2 35.7 (patch-gemm 40.5); with fewer channels the product is thin and it ties or
 * loses (128->128 at 8x8 32.3 vs 31.0, 64->64 at 7x7 13.3 vs transposed-conv 9.7), on
 * larger maps the gathered runs' transposes cost more (128->128 at 16x16 80.6 vs
 * split-shift 62.6).
 */
const GATHER_MAX_POSITIONS = 64;
const GATHER_MIN_CHANNELS = 256;

function gatherFits(g: ConvGeometry): boolean {
  return g.group === 1 && numel(spatialOf(g.y)) <= GATHER_MAX_POSITIONS && Math.min(g.w[0]!, g.w[1]!) >= GATHER_MIN_CHANNELS;
}

/**
 * The formulations the rule emits, from bench/conv-grad.ts (batch 64-128, 2 threads):
 * gather-gemm for small maps with many channels (gatherFits);
 * transposed-conv where dY fits in cache (transposedConvFits); otherwise patch-matmul is
 * the fastest weight gradient (0.7-1.5x the forward) except on tiny output maps, where
 * its per-image products are too thin (K = output positions) and the single large
 * product of patch-gemm wins (4x4: 1.0x vs 1.5x, 2x2: 0.6x vs 1.6x).
 * split-shift beats patch-matmul where writing the patches is a large part of the work:
 * few channels on large maps (one session running each alone, batch 128, 3x3: 16->16
 * at 28x28 8.7 -> 6.1 ms, 32->32 at 14x14 6.3 -> 5.1, 64->64 at 32x32 59.6 -> 44.9,
 * 96->96 at 28x28 batch 32 21.9 -> 19.3); it loses where its frame's extra rows cost
 * more than the copies save (64->64 at 7x7 6.3 -> 7.0) or the product dominates
 * (128->128 at 16x16 and 28x28 even, 256->256 at 8x8 and 14x14 20-25% slower).
 */
export function chooseWeightGradMethod(g: ConvGeometry): WeightGradMethod {
  if (gatherFits(g)) return 'gather-gemm';
  if (transposedConvFits(g)) return 'transposed-conv';
  if (numel(spatialOf(g.y)) <= 25) return 'patch-gemm';
  if (!splitShiftApplies(g)) return 'patch-matmul';
  const [cout, cin, kh, kw] = g.w as [number, number, number, number];
  const ho = g.y[2]!;
  const frameRows = (kh - 1) * g.dilations[0]!;
  // fewer values written than im2col's patches (not so with few input channels, e.g. an RGB stem)
  const fewerCopies = (kw * cin + kh * cout) * (ho + frameRows) < kh * kw * cin * ho;
  return fewerCopies && Math.max(cin, cout) <= 96 && 7 * frameRows <= ho ? 'split-shift' : 'patch-matmul';
}

/**
 * stacked-conv-transpose where dY's maps are small (at most STACKED_MAX_POSITIONS) and
 * the product is not tiny: bench/conv-grad.ts, batch 128, 2 threads, Intel Xeon, ms
 * per-image -> stacked: 3x3 256->512 at 8x8 s2 85.0 -> 55.8, 1x1 256->512 at 8x8 s2 19.9
 * -> 10.5, 3x3 64->128 at 7x7 s2 15.5 -> 10.7, 3x3 256->512 at 4x4 s2 57.7 -> 21.6; on
 * larger maps the per-image products are thick enough and the stacking's two transposes
 * cost more (dY 7x7: 8.9 -> 12.8, 8x8: 51.4 -> 59.4), and below STACKED_MIN_FLOPS the
 * extra nodes cost more than they save (1x1 64->128 at 7x7 s2: 1.1 -> 2.0).
 */
const STACKED_MAX_POSITIONS = 16;
const STACKED_MIN_FLOPS = 1e8;

/** flipped-conv (0.7-1.1x the forward) where it applies, i.e. stride 1; otherwise ConvTranspose, over stacked images on small maps. */
export function chooseInputGradMethod(g: ConvGeometry): InputGradMethod {
  if (flippedPads(g)) return 'flipped-conv';
  const flops = 2 * numel(g.y) * numel(g.w.slice(1));
  const small = g.group === 1 && numel(spatialOf(g.y)) <= STACKED_MAX_POSITIONS && flops >= STACKED_MIN_FLOPS;
  return small && stackedLayout(g) ? 'stacked-conv-transpose' : 'conv-transpose';
}

const conv: GradRule = (ctx) => {
  const [x, w, b] = ctx.node.inputs as [string, string, string | undefined];
  const dy = ctx.dOutputs[0];
  if (!dy) return ctx.node.inputs.map(() => undefined);
  const g = convGeometry(ctx);
  const dx = ctx.needs[0] ? convInputGrad(ctx, g, dy, ctx.forward(w), chooseInputGradMethod(g)) : undefined;
  const dw = ctx.needs[1] ? convWeightGrad(ctx, g, ctx.forward(x), dy, chooseWeightGradMethod(g)) : undefined;
  const db = b && ctx.needs[2] ? convBiasGrad(ctx, g, dy) : undefined;
  return [dx, dw, db];
};

export const RULES: Record<string, GradRule> = { Conv: conv };
