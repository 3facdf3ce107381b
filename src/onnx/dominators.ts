/**
 * Where a graph can be cut in two: the data flow from the image input to the output and
 * its dominators. A tensor is a cut only if every path from the input to the output
 * passes through it; then the part after it is a function of that tensor alone (a
 * stitch, an extracted suffix, a receiver). A tensor inside a residual block is not:
 * the skip connection bypasses it.
 *
 * Paths count only through values: initializers and constants carry none, and neither
 * does shape arithmetic (Shape(x) -> Gather -> Concat -> Reshape's shape input), whose
 * result depends on the input's size, not its values. Such tensors are never cuts.
 *
 * Per-image shapes come with the batch axis found, not assumed: shapes are inferred with
 * the batch as a symbol, and the axis carrying that symbol is the batch axis (axis 1 in
 * sequence-first attention, [tokens, batch, hidden]).
 */
import type { Dim, Model, Node } from './types.js';
import { producers } from './graph.js';
import { analyzeShapes } from './shapes.js';
import { channelAxes } from './channel-axes.js';
import { OptionError, UserError } from '../util/errors.js';

/**
 * Operators whose outputs depend only on the shape of their inputs, never on the values:
 * the data flow stops at them.
 */
const SHAPE_ONLY_OPS = new Set(['Shape', 'Size', 'EyeLike', 'RandomNormalLike', 'RandomUniformLike', 'RandomUniform', 'RandomNormal']);

/** The data flow of a model from its image input to its first output, with dominators. */
export interface DataFlow {
  input: string;
  output: string;
  /** tensors whose values depend on the input, in topological order (the input first) */
  order: string[];
  /** position in `order` */
  index: Map<string, number>;
  /** the data tensors among the inputs of each data tensor's producer */
  preds: Map<string, string[]>;
  /** the data tensors computed from each data tensor */
  succs: Map<string, string[]>;
  producer: Map<string, Node>;
  /** immediate dominator of every data tensor but the input */
  idom: Map<string, string>;
  /** data tensors the output depends on (the output included) */
  live: Set<string>;
  /** the tensors every path input -> output passes through, from the input to the output (both included) */
  chain: string[];
  chainSet: Set<string>;
}

const flowCache = new WeakMap<Model, DataFlow>();

/** The model's image input: its first graph input that is not an initializer. */
export function imageInput(model: Model): string {
  const g = model.graph;
  const v = g.inputs.find((i) => !g.initializers.has(i.name));
  if (!v) throw new UserError(`graph ${g.name} has no input`);
  return v.name;
}

/**
 * The data flow and its dominators (Cooper, Harvey & Kennedy's intersection on the
 * dominator tree; one pass suffices because the graph is acyclic and visited in
 * topological order).
 *
 * @example dataFlow(model).chain // ['input', '/conv1/Conv_output_0', ..., 'logits']
 */
export function dataFlow(model: Model): DataFlow {
  const cached = flowCache.get(model);
  if (cached) return cached;
  const g = model.graph;
  const input = imageInput(model);
  const output = g.outputs[0]?.name;
  if (!output) throw new UserError(`graph ${g.name} has no output`);
  const { order: nodes } = analyzeShapes(model);
  const data = new Set([input]);
  const order = [input];
  const preds = new Map<string, string[]>();
  const succs = new Map<string, string[]>();
  const producer = producers(g);
  for (const n of nodes) {
    if (SHAPE_ONLY_OPS.has(n.opType)) continue;
    const ins = [...new Set(n.inputs.filter((i) => i && data.has(i)))];
    if (!ins.length) continue;
    for (const o of n.outputs) {
      if (!o || data.has(o)) continue;
      data.add(o);
      order.push(o);
      preds.set(o, ins);
      for (const i of ins) succs.set(i, [...(succs.get(i) ?? []), o]);
    }
  }
  const index = new Map(order.map((t, i) => [t, i]));
  const depth = new Map([[input, 0]]);
  const idom = new Map<string, string>();
  const intersect = (a: string, b: string): string => {
    while (a !== b) {
      if (depth.get(a)! >= depth.get(b)!) a = idom.get(a)!;
      else b = idom.get(b)!;
    }
    return a;
  };
  for (const t of order.slice(1)) {
    const d = preds.get(t)!.reduce(intersect);
    idom.set(t, d);
    depth.set(t, depth.get(d)! + 1);
  }
  const live = new Set<string>();
  if (data.has(output)) {
    const stack = [output];
    while (stack.length) {
      const t = stack.pop()!;
      if (live.has(t)) continue;
      live.add(t);
      stack.push(...(preds.get(t) ?? []));
    }
  }
  const chain: string[] = [];
  if (data.has(output)) for (let t: string | undefined = output; t !== undefined; t = idom.get(t)) chain.unshift(t);
  const flow: DataFlow = { input, output, order, index, preds, succs, producer, idom, live, chain, chainSet: new Set(chain) };
  flowCache.set(model, flow);
  return flow;
}

/** The nearest tensor of the chain that dominates `t` (t itself when it is on the chain). */
export function chainBefore(flow: DataFlow, t: string): string {
  let d: string | undefined = t;
  while (d !== undefined && !flow.chainSet.has(d)) d = flow.idom.get(d);
  return d ?? flow.input;
}

/** The first tensor of the chain computed from `t` (where the paths that bypass `t` rejoin). */
export function chainAfter(flow: DataFlow, t: string): string | undefined {
  let best: string | undefined;
  const seen = new Set<string>();
  const stack = [t];
  while (stack.length) {
    const x = stack.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    if (x !== t && flow.chainSet.has(x)) {
      if (best === undefined || flow.index.get(x)! < flow.index.get(best)!) best = x;
      continue;
    }
    stack.push(...(flow.succs.get(x) ?? []));
  }
  return best;
}

/**
 * Why `tensor` is not a cut of the model, or undefined when it is one (the input and the
 * output themselves count as cuts here; callers that need a point strictly inside say so).
 */
export function cutProblem(model: Model, tensor: string): string | undefined {
  const flow = dataFlow(model);
  const g = model.graph;
  if (flow.chainSet.has(tensor)) return undefined;
  if (g.initializers.has(tensor)) return 'it is a weight (an initializer), not computed from the input';
  if (!flow.index.has(tensor)) {
    return flow.producer.has(tensor) || g.inputs.some((i) => i.name === tensor)
      ? `it does not depend on the values of the input "${flow.input}" (it is a constant or shape arithmetic)`
      : 'no such tensor';
  }
  if (!flow.live.has(tensor)) return `the output "${flow.output}" does not depend on it`;
  const join = chainAfter(flow, tensor);
  const node = join ? flow.producer.get(join) : undefined;
  const where = node ? `node "${node.name || node.opType}" (${node.opType})` : `"${join}"`;
  return `it is inside a block: the path into ${where} bypasses it`;
}

/** Throws a one-line UserError when `tensor` is not a cut of the model. */
export function checkCut(model: Model, tensor: string, file = 'the model', describe: (t: string) => string = (t) => `"${t}"`): void {
  const problem = cutProblem(model, tensor);
  if (!problem) return;
  const flow = dataFlow(model);
  let around = '';
  if (flow.live.has(tensor)) {
    const before = chainBefore(flow, tensor),
      after = chainAfter(flow, tensor);
    const names = [before !== flow.input ? describe(before) : undefined, after && after !== flow.output ? describe(after) : undefined].filter(Boolean);
    if (names.length) around = `; the nearest cuts around it are ${names.join(' and ')}`;
  }
  throw new OptionError((o) => `tensor "${tensor}" of ${file} is not a cut point: ${problem}${around} (see ${o('listCuts')})`);
}

/** Where the batch is in a tensor, and the shape of one image's part of it. */
export interface BatchLayout {
  /** the batch axis (0 batch-first; 1 for sequence-first tokens [T, N, D]) */
  batchAxis: number;
  /**
   * the shape without the batch axis, other axes in order, except that an image's
   * channels come first: [C, H, W] also for a channels-last [N, H, W, C] tensor
   */
  shape: number[];
  /**
   * the axis of the tensor (batch axis included) holding an image's channels, when it is
   * not the first axis after the batch (3 for channels-last [N, H, W, C]; see channel-axes.ts)
   */
  channelAxis?: number;
}

/** What shape inference knows with the batch as a symbol. */
export interface BatchedShapes {
  known: ReturnType<typeof analyzeShapes>['known'];
  /** the symbol standing for the batch size */
  symbol: string;
  /** the batch size of a fixed-batch export whose constants pin it (then only batch-first layouts are knowable) */
  fixedBatch?: number;
}

const probeCache = new WeakMap<Model, BatchedShapes>();

/** The model with its image input's batch size set to `batch` (a symbol or a number). */
function withBatch(model: Model, batch: string | number): Model {
  const input = imageInput(model);
  return {
    ...model,
    graph: { ...model.graph, inputs: model.graph.inputs.map((i) => (i.name === input && i.shape ? { ...i, shape: [batch, ...i.shape.slice(1)] } : i)) },
  };
}

/** Shapes inferred with the input's batch as a symbol (a fixed batch is replaced by one where the graph allows). */
export function batchedShapes(model: Model): BatchedShapes {
  const cached = probeCache.get(model);
  if (cached) return cached;
  const v = model.graph.inputs.find((i) => i.name === imageInput(model))!;
  const first = v.shape?.[0];
  const symbolic = typeof first === 'string' && first !== '';
  const symbol = symbolic ? first : '__batch__';
  const probe = symbolic ? model : withBatch(model, symbol);
  let r: BatchedShapes;
  try {
    r = { known: analyzeShapes(probe).known, symbol };
  } catch (e) {
    if (probe === model || !(e instanceof UserError)) throw e;
    r = { known: analyzeShapes(model).known, symbol, ...(typeof first === 'number' ? { fixedBatch: first } : {}) };
  }
  probeCache.set(model, r);
  return r;
}

const layoutCache = new WeakMap<Model, Map<string, BatchLayout | string>>();

/** Sizes inference could not follow symbolically (a class token expanded through Where/Equal shape arithmetic) come from two concrete batch sizes. */
const PROBE_BATCHES = [2, 3] as const;

/**
 * The batch axis and per-image shape of every tensor of the model where both are known,
 * else a reason (for messages). Shapes are inferred with the input's batch as a symbol;
 * the one axis holding that symbol is the batch axis. Where symbolic inference loses a
 * size, inference with two concrete batch sizes supplies it: the axis whose size follows
 * the batch is the batch axis, the others are per-image sizes.
 */
export function batchLayouts(model: Model): Map<string, BatchLayout | string> {
  const cached = layoutCache.get(model);
  if (cached) return cached;
  const { known, symbol, fixedBatch } = batchedShapes(model);
  const out = new Map<string, BatchLayout | string>();
  let concrete: ReturnType<typeof analyzeShapes>['known'][] | undefined;
  for (const [name, k] of known) {
    let layout = layoutOf(k.shape, symbol, fixedBatch);
    if (typeof layout === 'string' && k.shape && fixedBatch === undefined) {
      if (concrete === undefined) {
        try {
          concrete = PROBE_BATCHES.map((b) => analyzeShapes(withBatch(model, b)).known);
        } catch (e) {
          if (!(e instanceof UserError)) throw e;
          concrete = [];
        }
      }
      if (concrete.length) layout = concreteLayout(concrete.map((c) => c.get(name)?.shape)) ?? layout;
    }
    out.set(name, typeof layout === 'object' ? channelsFirst(layout, channelAxes(model).get(name)) : layout);
  }
  layoutCache.set(model, out);
  return out;
}

/** An image layout with its channels moved first when they sit elsewhere in the tensor. */
function channelsFirst(l: BatchLayout, channelAxis: number | undefined): BatchLayout {
  if (l.shape.length !== 3 || channelAxis === undefined || channelAxis === l.batchAxis) return l;
  const at = channelAxis < l.batchAxis ? channelAxis : channelAxis - 1;
  if (at === 0) return l;
  return { ...l, shape: [l.shape[at]!, ...l.shape.filter((_, i) => i !== at)], channelAxis };
}

/** The layout from a tensor's shapes at the probe batch sizes: one axis equal to them, the other sizes fixed numbers. */
function concreteLayout(shapes: (Dim[] | undefined)[]): BatchLayout | undefined {
  if (!shapes.every((s): s is Dim[] => !!s && s.every((d) => typeof d === 'number')) || shapes[0]!.length !== shapes[1]!.length) return undefined;
  const [a, b] = shapes as number[][];
  const axes = a!.flatMap((d, i) => (d !== b![i] ? [i] : []));
  if (axes.length !== 1 || a![axes[0]!] !== PROBE_BATCHES[0] || b![axes[0]!] !== PROBE_BATCHES[1]) return undefined;
  return { batchAxis: axes[0]!, shape: a!.filter((_, i) => i !== axes[0]) };
}

function layoutOf(shape: Dim[] | undefined, sym: string, fixedBatch: number | undefined): BatchLayout | string {
  if (!shape) return 'no shape';
  const dim = (d: Dim): string =>
    d === null
      ? '?'
      : typeof d === 'string'
        ? d
            .split('*')
            .map((f) => (f === sym ? 'batch' : f))
            .join('*')
        : String(d);
  const text = shape.map(dim).join('x');
  let axes = shape.flatMap((d, i) => (d === sym ? [i] : []));
  if (!axes.length && fixedBatch !== undefined && shape[0] === fixedBatch) axes = [0];
  if (axes.length !== 1) return axes.length ? `${text} (the batch appears on several axes)` : `${text} (no axis is the batch alone)`;
  const rest = shape.filter((_, i) => i !== axes[0]);
  if (!rest.every((d): d is number => typeof d === 'number')) return `${text} (not every per-image size is a fixed number)`;
  return { batchAxis: axes[0]!, shape: rest };
}
