/**
 * Size and cost of a model: parameters, FLOPs per image, operators used.
 *
 * FLOP convention (per image, batch 1, from inferred shapes):
 * - a multiply-add counts 2: Conv = 2 * Cin/groups * kh * kw * Cout * Hout * Wout,
 *   ConvTranspose = 2 * Cin * Cout/groups * kh * kw * Hin * Win, Gemm/MatMul = 2*M*K*N;
 *   a bias adds 1 per output element;
 * - BatchNormalization (inference) is an affine map, 2 per output element; Instance- and
 *   LayerNormalization are counted the same way (their statistics are not counted);
 * - MaxPool/AveragePool: 1 per window element per output (kh*kw per output element);
 *   global pools and reductions: 1 per input element;
 * - other elementwise operators (activations, Add, Mul, Softmax, ...) and Resize with
 *   interpolation: 1 per output element;
 * - data movement (Reshape, Concat, Slice, Gather, Pad, Transpose, nearest Resize, shape
 *   arithmetic, ...): 0.
 */
import type { Dim, Model, Node, ValueInfo } from './types.js';
import type { Known } from './op-context.js';
import { attrString } from './graph.js';
import { trainableParameterCount } from './parameters.js';
import { analyzeShapes, toValueInfo } from './shapes.js';
import { numel } from './tensor.js';
import { isNum } from './dims.js';

export interface ModelStats {
  /** elements of floating-point initializers */
  parameters: number;
  flopsPerImage: number;
  /** operator -> number of nodes */
  opHistogram: Record<string, number>;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  /** nodes whose cost could not be computed because a shape is unknown (not in flopsPerImage) */
  uncounted: string[];
}

const FREE = new Set([
  'Reshape',
  'Flatten',
  'Squeeze',
  'Unsqueeze',
  'Transpose',
  'Concat',
  'Split',
  'Slice',
  'Gather',
  'GatherElements',
  'Pad',
  'Identity',
  'Dropout',
  'Shape',
  'Size',
  'Constant',
  'ConstantOfShape',
  'Cast',
  'CastLike',
  'Expand',
  'Tile',
  'Range',
  'DepthToSpace',
  'SpaceToDepth',
  'ScatterElements',
  'ScatterND',
  'OneHot',
]);

/**
 * @example
 *   const s = modelStats(model);
 *   console.log(`${s.parameters} parameters, ${(s.flopsPerImage / 1e6).toFixed(1)} MFLOPs per image`);
 */
export function modelStats(model: Model): ModelStats {
  const g = model.graph;
  const { batch, perImage } = batchOne(model);
  const { known, order } = analyzeShapes(perImage);
  let flops = 0;
  const uncounted: string[] = [];
  const opHistogram: Record<string, number> = {};
  for (const n of order) {
    opHistogram[n.opType] = (opHistogram[n.opType] ?? 0) + 1;
    const f = nodeFlops(n, (name) => known.get(name));
    if (f === undefined) uncounted.push(n.name);
    else flops += f;
  }
  const original = analyzeShapes(model).known;
  return {
    parameters: trainableParameterCount(g),
    flopsPerImage: flops / batch,
    opHistogram,
    inputs: g.inputs.map((v) => toValueInfo(v.name, original.get(v.name)!)),
    outputs: g.outputs.map((v) => toValueInfo(v.name, original.get(v.name)!)),
    uncounted,
  };
}

/** The model with a symbolic leading (batch) dim of each input set to 1, and the batch a fixed one has. */
function batchOne(model: Model): { batch: number; perImage: Model } {
  const first = model.graph.inputs[0]?.shape?.[0];
  const batch = isNum(first) && first > 0 ? first : 1;
  const inputs = model.graph.inputs.map((v) => (v.shape && v.shape.length > 0 && !isNum(v.shape[0]) ? { ...v, shape: [1, ...v.shape.slice(1)] } : v));
  return { batch, perImage: { ...model, graph: { ...model.graph, inputs } } };
}

const count = (s: Dim[] | undefined): number | undefined => (s && s.every(isNum) ? numel(s) : undefined);

/** FLOPs of one node under the convention above; undefined when a needed shape is unknown. */
export function nodeFlops(n: Node, get: (tensor: string) => Known | undefined): number | undefined {
  if (FREE.has(n.opType)) return 0;
  const shape = (i: number): Dim[] | undefined => (n.inputs[i] ? get(n.inputs[i]!)?.shape : undefined);
  const out = count(get(n.outputs[0] ?? '')?.shape);
  const bias = (i: number): number => (n.inputs[i] ? (out ?? 0) : 0);
  if (out === undefined) return undefined;
  switch (n.opType) {
    case 'Conv': {
      const w = count(shape(1)?.slice(1));
      return w === undefined ? undefined : 2 * w * out + bias(2);
    }
    case 'ConvTranspose': {
      const x = count(shape(0));
      const w = count(shape(1)?.slice(1));
      return x === undefined || w === undefined ? undefined : 2 * x * w + bias(2);
    }
    case 'Gemm': {
      const a = shape(0);
      const k = a ? a[n.attributes['transA']?.value === 1 ? 0 : 1] : undefined;
      return isNum(k) ? 2 * k * out + bias(2) : undefined;
    }
    case 'MatMul': {
      const a = shape(0);
      const k = a?.[a.length - 1];
      return isNum(k) ? 2 * k * out : undefined;
    }
    case 'BatchNormalization':
    case 'InstanceNormalization':
    case 'LayerNormalization':
      return 2 * out;
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool': {
      const k = n.attributes['kernel_shape'];
      return k?.kind === 'ints' ? out * numel(k.value) : undefined;
    }
    case 'Resize':
    case 'Upsample':
      return attrString(n, 'mode', 'nearest') === 'nearest' ? 0 : out;
    default:
      if (n.opType.startsWith('Reduce') || n.opType.startsWith('Global') || n.opType.startsWith('Arg')) return count(shape(0));
      return out;
  }
}
