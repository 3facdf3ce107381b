/**
 * Which axis of each activation holds its channels (features), found from the operators
 * that compute it, not from its sizes: an 8x8x8 tensor may be [C,H,W] or [H,W,C].
 * Images come in [N, C, H, W]; convolutions and pooling write channels at axis 1; a Linear layer (MatMul or
 * Gemm with a weight) and a LayerNormalization over the last axis act on channels
 * last, as in the channels-last stages of Swin Transformers and ConvNeXt blocks
 * ([N, H, W, C]); Transpose moves the axis, and operators that keep the axes (elementwise,
 * Pad, Slice, Concat, Split, Softmax...) pass it on. Where no rule applies (Reshape,
 * Flatten, Gather, attention's MatMul of two activations) the axis is unknown.
 *
 * @example channelAxes(convnext).get('/stages/stages.1/stages.1.0/block/block.2/LayerNormalization_output_0') // 3
 */
import type { Model, Node } from './types.js';
import { attrInt, attrInts, isDefaultDomain } from './graph.js';
import { analyzeShapes } from './shapes.js';
import { ELEMENTWISE_RULES } from './rules-elementwise.js';

/** What a rule sees: the node, its inputs' channel axes (undefined when unknown) and ranks, its output's rank. */
interface AxisNode {
  node: Node;
  axes: (number | undefined)[];
  ranks: (number | undefined)[];
  rank: number;
  /** input i is a weight (an initializer, a constant or an alias of one), not computed from the graph's inputs */
  weight: (i: number) => boolean;
}

type AxisRule = (n: AxisNode) => number | undefined;

/** The channel axis of the first activation input of the output's rank whose axis is known: operators that keep axes in place. */
const keepsAxes: AxisRule = (n) => n.axes.find((a, i) => a !== undefined && n.ranks[i] === n.rank);

const channelsFirst: AxisRule = (n) => (n.rank >= 3 ? 1 : undefined);

/** A Linear layer: a weight matrix applied to the last axis. */
const linear: AxisRule = (n) => (n.weight(1) ? n.rank - 1 : undefined);

const NCHW_OPS = [
  'Conv',
  'ConvTranspose',
  'BatchNormalization',
  'InstanceNormalization',
  'MaxPool',
  'AveragePool',
  'LpPool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'GlobalLpPool',
  'LRN',
  'DepthToSpace',
  'SpaceToDepth',
];

/** One rule per operator; operators without one leave the axis unknown. */
const AXIS_RULES: Readonly<Record<string, AxisRule>> = {
  ...Object.fromEntries(Object.keys(ELEMENTWISE_RULES).map((op) => [op, keepsAxes])),
  ...Object.fromEntries(['Pad', 'Slice', 'Concat', 'Split', 'Resize', 'Upsample', 'Expand', 'Tile'].map((op) => [op, keepsAxes])),
  ...Object.fromEntries(NCHW_OPS.map((op) => [op, channelsFirst])),
  Transpose: (n) => {
    const a = n.axes[0];
    if (a === undefined) return undefined;
    const perm = attrInts(n.node, 'perm') ?? Array.from({ length: n.rank }, (_, i) => n.rank - 1 - i);
    const at = perm.indexOf(a);
    return at >= 0 ? at : undefined;
  },
  MatMul: linear,
  Gemm: (n) => (n.weight(1) ? 1 : undefined),
  // over the last axis only: per-position features (a channels-last LayerNorm); over more: the input's own axes
  LayerNormalization: (n) => {
    const axis = attrInt(n.node, 'axis', -1);
    return axis === -1 || axis === n.rank - 1 ? n.rank - 1 : keepsAxes(n);
  },
};

const cache = new WeakMap<Model, Map<string, number>>();

/**
 * The channel axis of every activation where the graph tells it (tensors of rank 3 or
 * more; see the module comment), keyed by tensor name.
 */
export function channelAxes(model: Model): Map<string, number> {
  const have = cache.get(model);
  if (have) return have;
  const g = model.graph;
  const { known, order } = analyzeShapes(model);
  const axes = new Map<string, number>();
  const inputs = g.inputs.filter((v) => !g.initializers.has(v.name));
  const data = new Set(inputs.map((v) => v.name));
  // images are fed [N, C, H, W] (data/batches.ts)
  for (const v of inputs) if (v.shape?.length === 4) axes.set(v.name, 1);
  for (const node of order) {
    if (node.inputs.some((i) => i && data.has(i))) for (const o of node.outputs) if (o) data.add(o);
    const rule = isDefaultDomain(node.domain) && Object.hasOwn(AXIS_RULES, node.opType) ? AXIS_RULES[node.opType]! : undefined;
    if (!rule) continue;
    const n: Omit<AxisNode, 'rank'> = {
      node,
      axes: node.inputs.map((i) => (i ? axes.get(i) : undefined)),
      ranks: node.inputs.map((i) => (i ? known.get(i)?.shape?.length : undefined)),
      weight: (i) => !!node.inputs[i] && !data.has(node.inputs[i]!),
    };
    for (const out of node.outputs) {
      const rank = out ? known.get(out)?.shape?.length : undefined;
      if (rank === undefined || rank < 3) continue;
      const a = rule({ ...n, rank });
      if (a !== undefined && a >= 0 && a < rank) axes.set(out, a);
    }
  }
  cache.set(model, axes);
  return axes;
}
