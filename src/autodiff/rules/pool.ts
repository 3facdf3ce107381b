/**
 * Gradients of pooling. MaxPool routes dY to each window's arg-max through the Indices
 * output and a scatter-add (overlapping windows add up); AveragePool spreads dY evenly
 * over each window with a depthwise ConvTranspose of ones, or with a plain Expand when
 * the windows tile the input exactly; GlobalAveragePool is an Expand of dY / size.
 */
import type { DType, Node, Tensor } from '../../onnx/types.js';
import type { Emitter, GradContext, GradRule } from '../types.js';
import { intsConstant, reshape } from '../grad.js';
import { attrInt, attrInts, int, ints, str } from '../../onnx/graph.js';
import { numel, tensor } from '../../onnx/tensor.js';
import { windowOutput } from '../../onnx/dims.js';
import { UserError } from '../../util/errors.js';
import { windowAttrs } from './conv.js';

/** Window geometry of a pool node, auto_pad resolved. */
export interface PoolGeometry {
  x: number[];
  y: number[];
  kernel: number[];
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
}

export function poolGeometry(ctx: Pick<GradContext, 'node' | 'shape'>): PoolGeometry {
  const { node } = ctx;
  const x = ctx.shape(node.inputs[0]!);
  const kernel = attrInts(node, 'kernel_shape');
  if (!kernel || x.length !== kernel.length + 2) {
    throw new UserError(`node ${node.name} (${node.opType}): kernel_shape ${JSON.stringify(kernel)} does not match input ${JSON.stringify(x)}`);
  }
  return { x, y: ctx.shape(node.outputs[0]!), kernel, ...windowAttrs(node, x.slice(2), kernel) };
}

const scalar = (dtype: DType, v: number): Tensor => tensor(dtype, [1], [v]);

// ---- MaxPool ----

/** The forward's Indices (flat offsets into X, row-major), emitted alongside when the node lacks them. */
function maxPoolIndices(ctx: GradContext): string {
  const { node } = ctx;
  if (node.outputs[1] && attrInt(node, 'storage_order', 0) === 0) return ctx.forward(node.outputs[1]);
  const attributes = { ...node.attributes };
  delete attributes.storage_order;
  return ctx.emit('MaxPool', [ctx.forward(node.inputs[0]!)], attributes, 2, `${node.name}_argmax`)[1]!;
}

/** No input cell lies in two windows: each is the arg-max of at most one output. */
function disjointWindows(g: PoolGeometry): boolean {
  return g.kernel.every((k, a) => g.strides[a]! >= (k - 1) * g.dilations[a]! + 1);
}

/**
 * dX = zeros(X) with dY at the arg-max offsets. Disjoint windows (VGG's 2x2 stride 2)
 * place them with MaxUnpool, which ORT runs ~3x faster than the general form: a
 * scatter-add into zeros (added, not placed: with overlapping windows one cell can be
 * the arg-max of several).
 */
export function maxPoolGrad(e: Emitter, g: PoolGeometry, dy: string, argmax: string, dtype: DType, hint = 'maxpool_dx'): string {
  if (disjointWindows(g)) {
    // ORT refuses an output_shape below (out - 1) * stride + kernel - pads; ceil_mode windows
    // reach past the input, so the end pads grow by that overhang (they only enter that
    // check: the indices are absolute offsets into X)
    const padsEnd = g.padsEnd.map((p, a) => Math.max(p, (g.y[a + 2]! - 1) * g.strides[a]! + g.kernel[a]! - g.padsBegin[a]! - g.x[a + 2]!));
    const attrs = { kernel_shape: ints(g.kernel), strides: ints(g.strides), pads: ints([...g.padsBegin, ...padsEnd]) };
    return e.emit('MaxUnpool', [dy, argmax, intsConstant(e, g.x, `${hint}_shape`)], attrs, 1, `${hint}_unpool`)[0]!;
  }
  const zeros = e.emit(
    'ConstantOfShape',
    [intsConstant(e, [numel(g.x)], `${hint}_size`)],
    { value: { kind: 'tensor', value: scalar(dtype, 0) } },
    1,
    `${hint}_zeros`,
  )[0]!;
  const flatIdx = reshape(e, argmax, [-1], `${hint}_idx`);
  const flatDy = reshape(e, dy, [-1], `${hint}_dy`);
  const scattered = e.emit('ScatterElements', [zeros, flatIdx, flatDy], { axis: int(0), reduction: str('add') }, 1, `${hint}_scatter`)[0]!;
  return reshape(e, scattered, g.x, hint);
}

const maxPool: GradRule = (ctx) => {
  const dy = ctx.dOutputs[0];
  if (!dy || !ctx.needs[0]) return [undefined];
  const x = ctx.node.inputs[0]!;
  return [maxPoolGrad(ctx, poolGeometry(ctx), dy, maxPoolIndices(ctx), ctx.dtype(x), `${ctx.node.name}_dx`)];
};

// ---- AveragePool ----

/** Per output position, what ONNX Runtime divides the window's sum by. */
export function averageDivisors(g: PoolGeometry, countIncludePad: boolean): Float64Array {
  const out = g.y.slice(2);
  const spatial = g.x.slice(2);
  const perAxis = out.map((o, a) =>
    Array.from({ length: o }, (_, i) => {
      const start = i * g.strides[a]! - g.padsBegin[a]!;
      const reach = (g.kernel[a]! - 1) * g.dilations[a]! + 1;
      const [lo, hi] = countIncludePad
        ? [start, Math.min(start + reach, spatial[a]! + g.padsEnd[a]!)]
        : [Math.max(start, 0), Math.min(start + reach, spatial[a]!)];
      // cells of the dilated window inside [lo, hi)
      let n = 0;
      for (let k = 0; k < g.kernel[a]!; k++) {
        const p = start + k * g.dilations[a]!;
        if (p >= lo && p < hi) n++;
      }
      return n;
    }),
  );
  const d = new Float64Array(numel(out)).fill(1);
  let stride = 1;
  for (let a = out.length - 1; a >= 0; a--) {
    for (let i = 0; i < d.length; i++) d[i] *= perAxis[a]![Math.floor(i / stride) % out[a]!]!;
    stride *= out[a]!;
  }
  return d;
}

/** Windows that tile the input exactly: each input cell belongs to one window. */
function tiles(g: PoolGeometry): boolean {
  return g.kernel.every((k, a) => k === g.strides[a] && g.dilations[a] === 1 && g.padsBegin[a] === 0 && g.padsEnd[a] === 0 && g.x[a + 2] === g.y[a + 2]! * k);
}

/** dX for windows that tile the input: every cell of a window gets its dY, via Reshape + Expand. */
function spreadByExpand(e: Emitter, g: PoolGeometry, dy: string, hint: string): string {
  const [n, c] = g.x as [number, number];
  const out = g.y.slice(2);
  const split = [n, c, ...out.flatMap((o) => [o, 1])];
  const expanded = [n, c, ...out.flatMap((o, a) => [o, g.kernel[a]!])];
  const e6 = e.emit('Expand', [reshape(e, dy, split, `${hint}_split`), intsConstant(e, expanded, `${hint}_expand_shape`)], {}, 1, `${hint}_expand`)[0]!;
  return reshape(e, e6, g.x, hint);
}

/**
 * dX by a depthwise ConvTranspose with a ones kernel. Its output is cropped or padded at
 * the end to the input's size: ceil_mode windows may reach past the padded input, and
 * floor division may leave input cells no window reads.
 */
function spreadByConvTranspose(e: Emitter, g: PoolGeometry, dy: string, dtype: DType, hint: string): string {
  const c = g.x[1]!;
  const ones = e.addConstant(tensor(dtype, [c, 1, ...g.kernel], new Array<number>(c * numel(g.kernel)).fill(1)), `${hint}_ones`);
  const padsEnd = [...g.padsEnd];
  const outPad = g.x.slice(2).map((size, a) => {
    const produced = g.strides[a]! * (g.y[a + 2]! - 1) + (g.kernel[a]! - 1) * g.dilations[a]! + 1 - g.padsBegin[a]! - g.padsEnd[a]!;
    const extra = size - produced;
    if (extra < 0) padsEnd[a]! -= extra;
    return Math.max(0, extra);
  });
  return e.emit(
    'ConvTranspose',
    [dy, ones],
    {
      kernel_shape: ints(g.kernel),
      strides: ints(g.strides),
      dilations: ints(g.dilations),
      pads: ints([...g.padsBegin, ...padsEnd]),
      output_padding: ints(outPad),
      group: int(c),
    },
    1,
    hint,
  )[0]!;
}

export function averagePoolGrad(e: Emitter, g: PoolGeometry, dy: string, countIncludePad: boolean, dtype: DType, hint = 'avgpool_dx'): string {
  const divisors = averageDivisors(g, countIncludePad);
  const uniform = divisors.every((d) => d === divisors[0]);
  const reciprocal = uniform
    ? e.addConstant(scalar(dtype, 1 / divisors[0]!), `${hint}_scale`)
    : e.addConstant(
        tensor(
          dtype,
          [1, 1, ...g.y.slice(2)],
          Array.from(divisors, (d) => 1 / d),
        ),
        `${hint}_scale`,
      );
  const scaled = e.emit('Mul', [dy, reciprocal], {}, 1, `${hint}_scaled`)[0]!;
  return tiles(g) ? spreadByExpand(e, g, scaled, hint) : spreadByConvTranspose(e, g, scaled, dtype, hint);
}

const averagePool: GradRule = (ctx) => {
  const dy = ctx.dOutputs[0];
  if (!dy || !ctx.needs[0]) return [undefined];
  const g = poolGeometry(ctx);
  checkOutput(ctx.node, g, attrInt(ctx.node, 'ceil_mode', 0) === 1);
  const includePad = attrInt(ctx.node, 'count_include_pad', 0) === 1;
  return [averagePoolGrad(ctx, g, dy, includePad, ctx.dtype(ctx.node.inputs[0]!), `${ctx.node.name}_dx`)];
};

/** The divisors assume ONNX Runtime's window count; a different inferred shape means they would be wrong. */
function checkOutput(node: Node, g: PoolGeometry, ceil: boolean): void {
  const expected = g.x.slice(2).map((s, a) =>
    windowOutput(
      s,
      {
        kernel: g.kernel[a]!,
        stride: g.strides[a]!,
        dilation: g.dilations[a]!,
        padBegin: g.padsBegin[a]!,
        padEnd: g.padsEnd[a]!,
      },
      ceil,
    ),
  );
  if (expected.some((o, a) => o !== g.y[a + 2])) {
    throw new UserError(
      `node ${node.name} (${node.opType}): output ${JSON.stringify(g.y)} does not match its window geometry (expected spatial ${JSON.stringify(expected)})`,
    );
  }
}

// ---- GlobalAveragePool ----

const globalAveragePool: GradRule = (ctx) => {
  const dy = ctx.dOutputs[0];
  if (!dy || !ctx.needs[0]) return [undefined];
  const x = ctx.node.inputs[0]!;
  const shape = ctx.shape(x);
  const hint = `${ctx.node.name}_dx`;
  const scale = ctx.addConstant(scalar(ctx.dtype(x), 1 / numel(shape.slice(2))), `${hint}_scale`);
  const scaled = ctx.emit('Mul', [dy, scale], {}, 1, `${hint}_scaled`)[0]!;
  return [ctx.emit('Expand', [scaled, intsConstant(ctx, shape, `${hint}_shape`)], {}, 1, hint)[0]!];
};

export const RULES: Record<string, GradRule> = {
  MaxPool: maxPool,
  AveragePool: averagePool,
  GlobalAveragePool: globalAveragePool,
};
