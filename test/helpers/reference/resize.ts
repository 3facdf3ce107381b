/**
 * Float64 reference Resize, nearest mode only (what the zoo and PyTorch's Upsample
 * exports use): every coordinate_transformation_mode except tf_crop_and_resize, every
 * nearest_mode, scales or sizes.
 */
import type { Node } from '../../../src/onnx/types.js';
import { attrString } from '../../../src/onnx/graph.js';
import { numel } from '../../../src/onnx/tensor.js';
import { indices, stridesOf } from './conv.js';
import { registerRefOp, type RefTensor } from './registry.js';

function originalCoordinate(mode: string, x: number, scale: number, inSize: number, outSize: number): number {
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
      throw new Error(`reference Resize: coordinate_transformation_mode ${mode} is not implemented`);
  }
}

function roundNearest(mode: string, v: number): number {
  const frac = v - Math.floor(v);
  switch (mode) {
    case 'round_prefer_floor':
      return frac === 0.5 ? Math.floor(v) : Math.round(v);
    case 'round_prefer_ceil':
      return frac === 0.5 ? Math.ceil(v) : Math.round(v);
    case 'floor':
      return Math.floor(v);
    case 'ceil':
      return Math.ceil(v);
    default:
      throw new Error(`reference Resize: nearest_mode ${mode} is not implemented`);
  }
}

function resize(node: Node, inputs: (RefTensor | undefined)[]): RefTensor[] {
  const [x, , scalesT, sizesT] = inputs;
  if (attrString(node, 'mode', 'nearest') !== 'nearest') throw new Error('reference Resize: only mode "nearest" is implemented');
  const ctm = attrString(node, 'coordinate_transformation_mode', 'half_pixel');
  const nearest = attrString(node, 'nearest_mode', 'round_prefer_floor');
  const inDims = x!.dims;
  const sizes = sizesT && sizesT.data.length > 0 ? Array.from(sizesT.data) : inDims.map((d, a) => Math.floor(d * scalesT!.data[a]!));
  const scales = scalesT && scalesT.data.length > 0 ? Array.from(scalesT.data) : sizes.map((s, a) => s / inDims[a]!);
  const source = sizes.map((out, a) =>
    Array.from({ length: out }, (_, i) => {
      const v = roundNearest(nearest, originalCoordinate(ctm, i, scales[a]!, inDims[a]!, out));
      return Math.min(Math.max(v, 0), inDims[a]! - 1);
    }),
  );
  const xs = stridesOf(inDims);
  const y = new Float64Array(numel(sizes));
  let i = 0;
  for (const o of indices(sizes)) {
    let off = 0;
    for (let a = 0; a < o.length; a++) off += source[a]![o[a]!]! * xs[a]!;
    y[i++] = x!.data[off]!;
  }
  return [{ dims: sizes, data: y }];
}

registerRefOp('Resize', resize);
