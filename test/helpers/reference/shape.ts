/**
 * Reference (float64) operators that move values: reshapes, transposes, concatenation,
 * slicing, padding, gathers and scatters, constants. Integer tensors (shapes, indices)
 * travel as float64 too.
 */
import type { Node } from '../../../src/onnx/types.js';
import { attrInt, attrInts, attrString, attrTensor } from '../../../src/onnx/graph.js';
import { constantNodeValue } from '../../../src/onnx/rules-shape.js';
import { toNumbers } from '../../../src/onnx/tensor.js';
import { sliceRange } from '../../../src/onnx/dims.js';
import { registerRefOp, type RefTensor } from './registry.js';
import { broadcastDims, broadcastIndex, normalizeAxis, refTensor, size, unravel } from './elementwise.js';

type Inputs = (RefTensor | undefined)[];

const values = (t: RefTensor | undefined): number[] => (t ? Array.from(t.data) : []);

/** out[i] = x[source(multi-index of i)] for an output of shape `dims`. */
function gatherFrom(x: RefTensor, dims: readonly number[], source: (idx: number[]) => number): RefTensor {
  const out = refTensor(dims);
  for (let o = 0; o < out.data.length; o++) out.data[o] = x.data[source(unravel(o, dims))]!;
  return out;
}

const flatIndex = (idx: readonly number[], dims: readonly number[]): number => idx.reduce((f, v, i) => f * dims[i]! + v, 0);

function reshapeTo(x: RefTensor, dims: number[]): RefTensor[] {
  if (size(dims) !== x.data.length) throw new Error(`reference Reshape: [${x.dims}] cannot become [${dims}]`);
  return [{ dims, data: x.data.slice() }];
}

function reshape(node: Node, [x, shape]: Inputs): RefTensor[] {
  const spec = values(shape);
  const allowZero = attrInt(node, 'allowzero', 0) === 1;
  const dims = spec.map((d, i) => (d === 0 && !allowZero ? x!.dims[i]! : d));
  const known = dims.filter((d) => d !== -1).reduce((a, v) => a * v, 1);
  return reshapeTo(
    x!,
    dims.map((d) => (d === -1 ? x!.data.length / known : d)),
  );
}

function flatten(node: Node, [x]: Inputs): RefTensor[] {
  const axis = normalizeAxis(attrInt(node, 'axis', 1), x!.dims.length);
  return reshapeTo(x!, [size(x!.dims.slice(0, axis)), size(x!.dims.slice(axis))]);
}

function squeeze(_: Node, [x, axes]: Inputs): RefTensor[] {
  const ax = axes ? values(axes).map((a) => normalizeAxis(a, x!.dims.length)) : x!.dims.flatMap((d, i) => (d === 1 ? [i] : []));
  return reshapeTo(
    x!,
    x!.dims.filter((_, i) => !ax.includes(i)),
  );
}

function unsqueeze(_: Node, [x, axes]: Inputs): RefTensor[] {
  const rank = x!.dims.length + values(axes).length;
  const ax = values(axes).map((a) => normalizeAxis(a, rank));
  const dims: number[] = [];
  let k = 0;
  for (let i = 0; i < rank; i++) dims.push(ax.includes(i) ? 1 : x!.dims[k++]!);
  return reshapeTo(x!, dims);
}

function transpose(node: Node, [x]: Inputs): RefTensor[] {
  const rank = x!.dims.length;
  const perm = attrInts(
    node,
    'perm',
    Array.from({ length: rank }, (_, i) => rank - 1 - i),
  );
  const dims = perm.map((p) => x!.dims[p]!);
  return [
    gatherFrom(x!, dims, (idx) => {
      const src = new Array<number>(rank);
      perm.forEach((p, i) => (src[p] = idx[i]!));
      return flatIndex(src, x!.dims);
    }),
  ];
}

function concat(node: Node, inputs: Inputs): RefTensor[] {
  const xs = inputs.filter((t): t is RefTensor => !!t);
  const axis = normalizeAxis(attrInt(node, 'axis', 0), xs[0]!.dims.length);
  const dims = [...xs[0]!.dims];
  dims[axis] = xs.reduce((s, t) => s + t.dims[axis]!, 0);
  const out = refTensor(dims);
  for (let o = 0; o < out.data.length; o++) {
    const idx = unravel(o, dims);
    let k = 0;
    while (idx[axis]! >= xs[k]!.dims[axis]!) idx[axis]! -= xs[k++]!.dims[axis]!;
    out.data[o] = xs[k]!.data[flatIndex(idx, xs[k]!.dims)]!;
  }
  return [out];
}

function split(node: Node, [x, sizes]: Inputs): RefTensor[] {
  const axis = normalizeAxis(attrInt(node, 'axis', 0), x!.dims.length);
  const n = node.outputs.length;
  const total = x!.dims[axis]!;
  const parts = sizes ? values(sizes) : (attrInts(node, 'split') ?? Array.from({ length: n }, () => total / n));
  let start = 0;
  return parts.map((len) => {
    const dims = x!.dims.map((d, i) => (i === axis ? len : d));
    const from = start;
    start += len;
    return gatherFrom(x!, dims, (idx) =>
      flatIndex(
        idx.map((v, i) => (i === axis ? v + from : v)),
        x!.dims,
      ),
    );
  });
}

function slice(_: Node, [x, starts, ends, axes, steps]: Inputs): RefTensor[] {
  const rank = x!.dims.length;
  const first = x!.dims.map(() => 0);
  const step = x!.dims.map(() => 1);
  const dims = [...x!.dims];
  const st = values(starts);
  const ax = axes ? values(axes).map((a) => normalizeAxis(a, rank)) : st.map((_, i) => i);
  ax.forEach((a, k) => {
    const s = steps ? values(steps)[k]! : 1;
    const { start, count } = sliceRange(x!.dims[a]!, st[k]!, values(ends)[k]!, s);
    first[a] = start;
    step[a] = s;
    dims[a] = count;
  });
  return [
    gatherFrom(x!, dims, (idx) =>
      flatIndex(
        idx.map((v, i) => first[i]! + v * step[i]!),
        x!.dims,
      ),
    ),
  ];
}

/** Pad in constant, edge or reflect mode; negative pads crop. */
function pad(node: Node, [x, pads, constant]: Inputs): RefTensor[] {
  const rank = x!.dims.length;
  const p = values(pads);
  const mode = attrString(node, 'mode', 'constant');
  const fill = constant ? constant.data[0]! : 0;
  const dims = x!.dims.map((d, i) => d + p[i]! + p[i + rank]!);
  const out = refTensor(dims);
  for (let o = 0; o < out.data.length; o++) {
    const idx = unravel(o, dims).map((v, i) => v - p[i]!);
    let inside = true;
    const src = idx.map((v, i) => {
      const d = x!.dims[i]!;
      if (v >= 0 && v < d) return v;
      inside = false;
      if (mode === 'edge') return Math.min(Math.max(v, 0), d - 1);
      if (mode === 'reflect') return v < 0 ? -v : 2 * (d - 1) - v;
      return 0;
    });
    out.data[o] = inside || mode !== 'constant' ? x!.data[flatIndex(src, x!.dims)]! : fill;
  }
  return [out];
}

function expand(_: Node, [x, shape]: Inputs): RefTensor[] {
  const dims = broadcastDims([x!.dims, values(shape)]);
  return [gatherFrom(x!, dims, (idx) => broadcastIndex(x!, idx))];
}

function gather(node: Node, [x, indices]: Inputs): RefTensor[] {
  const axis = normalizeAxis(attrInt(node, 'axis', 0), x!.dims.length);
  const n = x!.dims[axis]!;
  const dims = [...x!.dims.slice(0, axis), ...indices!.dims, ...x!.dims.slice(axis + 1)];
  const q = indices!.dims.length;
  return [
    gatherFrom(x!, dims, (idx) => {
      const at = idx.slice(axis, axis + q);
      const k = indices!.data[flatIndex(at, indices!.dims)]!;
      return flatIndex([...idx.slice(0, axis), k < 0 ? k + n : k, ...idx.slice(axis + q)], x!.dims);
    }),
  ];
}

function gatherElements(node: Node, [x, indices]: Inputs): RefTensor[] {
  const axis = normalizeAxis(attrInt(node, 'axis', 0), x!.dims.length);
  return [
    gatherFrom(x!, indices!.dims, (idx) => {
      const k = indices!.data[flatIndex(idx, indices!.dims)]!;
      return flatIndex(
        idx.map((v, i) => (i === axis ? (k < 0 ? k + x!.dims[axis]! : k) : v)),
        x!.dims,
      );
    }),
  ];
}

const combine =
  (reduction: string) =>
  (old: number, v: number): number =>
    reduction === 'add' ? old + v : reduction === 'mul' ? old * v : reduction === 'max' ? Math.max(old, v) : reduction === 'min' ? Math.min(old, v) : v;

function scatterElements(node: Node, [x, indices, updates]: Inputs): RefTensor[] {
  const axis = normalizeAxis(attrInt(node, 'axis', 0), x!.dims.length);
  const f = combine(attrString(node, 'reduction', 'none'));
  const out = { dims: [...x!.dims], data: x!.data.slice() };
  for (let u = 0; u < updates!.data.length; u++) {
    const idx = unravel(u, updates!.dims);
    const k = indices!.data[u]!;
    idx[axis] = k < 0 ? k + x!.dims[axis]! : k;
    const flat = flatIndex(idx, x!.dims);
    out.data[flat] = f(out.data[flat]!, updates!.data[u]!);
  }
  return [out];
}

function scatterND(node: Node, [x, indices, updates]: Inputs): RefTensor[] {
  const f = combine(attrString(node, 'reduction', 'none'));
  const out = { dims: [...x!.dims], data: x!.data.slice() };
  const k = indices!.dims.at(-1)!;
  const block = size(x!.dims.slice(k));
  const count = indices!.data.length / k;
  for (let j = 0; j < count; j++) {
    const prefix = Array.from(indices!.data.subarray(j * k, j * k + k)).map((v, i) => (v < 0 ? v + x!.dims[i]! : v));
    const base = flatIndex([...prefix, ...x!.dims.slice(k).map(() => 0)], x!.dims);
    for (let e = 0; e < block; e++) out.data[base + e] = f(out.data[base + e]!, updates!.data[j * block + e]!);
  }
  return [out];
}

function oneHot(node: Node, [indices, depth, vals]: Inputs): RefTensor[] {
  const d = depth!.data[0]!;
  const axis = normalizeAxis(attrInt(node, 'axis', -1), indices!.dims.length + 1);
  const dims = [...indices!.dims.slice(0, axis), d, ...indices!.dims.slice(axis)];
  const out = refTensor(dims);
  for (let o = 0; o < out.data.length; o++) {
    const idx = unravel(o, dims);
    const c = idx.splice(axis, 1)[0]!;
    let k = indices!.data[flatIndex(idx, indices!.dims)]!;
    if (k < 0) k += d;
    out.data[o] = k === c ? vals!.data[1]! : vals!.data[0]!;
  }
  return [out];
}

function tile(_: Node, [x, repeats]: Inputs): RefTensor[] {
  const r = values(repeats);
  const dims = x!.dims.map((d, i) => d * r[i]!);
  return [
    gatherFrom(x!, dims, (idx) =>
      flatIndex(
        idx.map((v, i) => v % x!.dims[i]!),
        x!.dims,
      ),
    ),
  ];
}

function constantOfShape(node: Node, [shape]: Inputs): RefTensor[] {
  const value = attrTensor(node, 'value');
  const out = refTensor(values(shape));
  out.data.fill(value ? toNumbers(value)[0]! : 0);
  return [out];
}

function constant(node: Node): RefTensor[] {
  const t = constantNodeValue(node);
  return [refTensor(t.dims, toNumbers(t))];
}

registerRefOp('Constant', constant);
registerRefOp('ConstantOfShape', constantOfShape);
registerRefOp('Shape', (_, [x]) => [refTensor([x!.dims.length], x!.dims)]);
registerRefOp('Reshape', reshape);
registerRefOp('Flatten', flatten);
registerRefOp('Squeeze', squeeze);
registerRefOp('Unsqueeze', unsqueeze);
registerRefOp('Transpose', transpose);
registerRefOp('Concat', concat);
registerRefOp('Split', split);
registerRefOp('Slice', slice);
registerRefOp('Pad', pad);
registerRefOp('Expand', expand);
registerRefOp('Gather', gather);
registerRefOp('GatherElements', gatherElements);
registerRefOp('ScatterElements', scatterElements);
registerRefOp('ScatterND', scatterND);
registerRefOp('OneHot', oneHot);
registerRefOp('Tile', tile);
