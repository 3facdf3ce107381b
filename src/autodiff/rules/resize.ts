/**
 * Gradient of Resize in nearest mode. Each output cell copies one input cell, so dX sums
 * dY over the output cells that read each input cell. With an integer scale whose cells
 * map in blocks (asymmetric/floor, half_pixel, ...) that is a Reshape splitting every
 * scaled axis into (input, scale) and a ReduceSum over the scale parts; any other
 * nearest mapping contracts dY with a 0/1 selection matrix per resized axis.
 */
import type { Node } from '../../onnx/types.js';
import type { Emitter, GradContext, GradRule } from '../types.js';
import { intsConstant } from '../grad.js';
import { attrString, ints } from '../../onnx/graph.js';
import { float32, toNumbers } from '../../onnx/tensor.js';
import { UserError } from '../../util/errors.js';

function originalCoordinate(node: Node, x: number, scale: number, inSize: number, outSize: number): number {
  const mode = attrString(node, 'coordinate_transformation_mode', 'half_pixel');
  switch (mode) {
    case 'half_pixel':
      return (x + 0.5) / scale - 0.5;
    case 'pytorch_half_pixel':
      return outSize > 1 ? (x + 0.5) / scale - 0.5 : 0;
    case 'align_corners':
      return outSize === 1 ? 0 : (x * (inSize - 1)) / (outSize - 1);
    case 'asymmetric':
      return x / scale;
    case 'tf_half_pixel_for_nn':
      return (x + 0.5) / scale;
    default:
      throw new UserError(`node ${node.name} (Resize): no gradient for coordinate_transformation_mode "${mode}"`);
  }
}

function nearestIndex(node: Node, v: number): number {
  const mode = attrString(node, 'nearest_mode', 'round_prefer_floor');
  const half = v - Math.floor(v) === 0.5;
  switch (mode) {
    case 'round_prefer_floor':
      return half ? Math.floor(v) : Math.round(v);
    case 'round_prefer_ceil':
      return half ? Math.ceil(v) : Math.round(v);
    case 'floor':
      return Math.floor(v);
    case 'ceil':
      return Math.ceil(v);
    default:
      throw new UserError(`node ${node.name} (Resize): nearest_mode "${mode}" is not one of round_prefer_floor, round_prefer_ceil, floor, ceil`);
  }
}

/** For each axis, the input index each output index reads. */
export function nearestSources(node: Node, input: readonly number[], output: readonly number[], scales: readonly number[] | undefined): number[][] {
  return output.map((out, a) => {
    const scale = scales?.[a] ?? out / input[a]!;
    return Array.from({ length: out }, (_, i) => Math.min(Math.max(nearestIndex(node, originalCoordinate(node, i, scale, input[a]!, out)), 0), input[a]! - 1));
  });
}

/** The integer factor when output index i reads input floor(i / factor) on this axis. */
function blockFactor(source: readonly number[], inSize: number): number | undefined {
  if (source.length % inSize !== 0) return undefined;
  const f = source.length / inSize;
  return source.every((s, i) => s === Math.floor(i / f)) ? f : undefined;
}

/** dX by summing each block of dY: Reshape [.., in, f, ..] and ReduceSum over the f axes. */
function sumBlocks(e: Emitter, dy: string, input: readonly number[], factors: number[], hint: string): string {
  const split = input.flatMap((d, a) => (factors[a]! > 1 ? [d, factors[a]!] : [d]));
  const axes: number[] = [];
  let k = 0;
  input.forEach((_, a) => {
    if (factors[a]! > 1) {
      axes.push(k + 1);
      k += 2;
    } else k += 1;
  });
  const reshaped = e.emit('Reshape', [dy, intsConstant(e, split, `${hint}_split`)], {}, 1, `${hint}_blocks`)[0]!;
  return e.emit('ReduceSum', [reshaped, intsConstant(e, axes, `${hint}_axes`)], { keepdims: { kind: 'int', value: 0 } }, 1, hint)[0]!;
}

/** dX by a 0/1 matrix [out, in] per resized axis, applied on the last axis (transposed there and back). */
function selectBack(e: Emitter, dy: string, input: readonly number[], sources: number[][], hint: string): string {
  let t = dy;
  const rank = input.length;
  sources.forEach((src, a) => {
    if (src.length === input[a] && src.every((s, i) => s === i)) return;
    const m = new Float32Array(src.length * input[a]!);
    src.forEach((s, i) => {
      m[i * input[a]! + s] = 1;
    });
    const matrix = e.addConstant(float32([src.length, input[a]!], m), `${hint}_select${a}`);
    const perm = Array.from({ length: rank }, (_, i) => (i === a ? rank - 1 : i === rank - 1 ? a : i));
    const last = a === rank - 1;
    const moved = last ? t : e.emit('Transpose', [t], { perm: ints(perm) }, 1, `${hint}_t${a}`)[0]!;
    const product = e.emit('MatMul', [moved, matrix], {}, 1, `${hint}_mm${a}`)[0]!;
    t = last ? product : e.emit('Transpose', [product], { perm: ints(perm) }, 1, `${hint}_back${a}`)[0]!;
  });
  return t;
}

export function resizeNearestGrad(
  e: Emitter,
  node: Node,
  input: readonly number[],
  output: readonly number[],
  scales: readonly number[] | undefined,
  dy: string,
  hint = 'resize_dx',
): string {
  const sources = nearestSources(node, input, output, scales);
  const factors = sources.map((s, a) => blockFactor(s, input[a]!));
  if (factors.every((f) => f !== undefined)) return sumBlocks(e, dy, input, factors as number[], hint);
  return selectBack(e, dy, input, sources, hint);
}

/** The scales that drive the coordinate transform; with sizes given, ONNX uses output / input instead. */
function transformScales(ctx: GradContext): number[] | undefined {
  const { node } = ctx;
  if (node.inputs[3]) return undefined;
  const name = node.inputs[2];
  const t = name ? ctx.constant(name) : undefined;
  if (!t) throw new UserError(`node ${node.name} (Resize): its scales must be a constant to differentiate it`);
  return toNumbers(t);
}

const resize: GradRule = (ctx) => {
  const { node } = ctx;
  const dy = ctx.dOutputs[0];
  const none = node.inputs.map(() => undefined);
  if (!dy || !ctx.needs[0]) return none;
  const mode = attrString(node, 'mode', 'nearest');
  if (mode !== 'nearest') throw new UserError(`node ${node.name} (Resize): no gradient for mode "${mode}" (only "nearest")`);
  const dx = resizeNearestGrad(ctx, node, ctx.shape(node.inputs[0]!), ctx.shape(node.outputs[0]!), transformScales(ctx), dy, `${node.name}_dx`);
  return [dx, ...none.slice(1)];
};

export const RULES: Record<string, GradRule> = { Resize: resize };
