/**
 * Float64 reference pooling: MaxPool (with its Indices output), AveragePool
 * (count_include_pad, ceil_mode) and GlobalAveragePool, with ONNX Runtime's rules for
 * the ceil-mode window count and the average's divisor.
 */
import type { Node } from '../../../src/onnx/types.js';
import { attrInt, attrInts } from '../../../src/onnx/graph.js';
import { numel } from '../../../src/onnx/tensor.js';
import { indices, refWindow, type RefWindow, spatialOffset, stridesOf } from './conv.js';
import { registerRefOp, type RefTensor } from './registry.js';

/** Output size of one axis; a last ceil-mode window that starts inside the end padding is dropped, as ORT does. */
function outSize(size: number, w: RefWindow, a: number, ceil: boolean): number {
  const span = size + w.padsBegin[a]! + w.padsEnd[a]! - w.dilations[a]! * (w.kernel[a]! - 1) - 1;
  let out = (ceil ? Math.ceil(span / w.strides[a]!) : Math.floor(span / w.strides[a]!)) + 1;
  if (ceil && (out - 1) * w.strides[a]! >= size + w.padsBegin[a]!) out--;
  return out;
}

interface PoolGeometry {
  spatial: number[];
  win: RefWindow;
  out: number[];
}

function poolGeometry(node: Node, x: RefTensor): PoolGeometry {
  const spatial = x.dims.slice(2);
  const win = refWindow(node, spatial, attrInts(node, 'kernel_shape', []));
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  return { spatial, win, out: spatial.map((s, a) => outSize(s, win, a, ceil)) };
}

/** Calls visit(outIndex, planeBase) for each (n, c) plane and output position, with the window's in-bounds input offsets. */
function forEachWindow(x: RefTensor, g: PoolGeometry, visit: (o: number[], plane: number, cells: number[]) => void): void {
  const planes = x.dims[0]! * x.dims[1]!;
  const ss = stridesOf(g.spatial);
  for (let p = 0; p < planes; p++) {
    for (const o of indices(g.out)) {
      const cells: number[] = [];
      for (const k of indices(g.win.kernel)) {
        const pos = o.map((oi, a) => oi * g.win.strides[a]! + k[a]! * g.win.dilations[a]! - g.win.padsBegin[a]!);
        if (pos.every((q, a) => q >= 0 && q < g.spatial[a]!)) cells.push(spatialOffset(pos, ss));
      }
      visit(o, p, cells);
    }
  }
}

function maxPool(node: Node, inputs: (RefTensor | undefined)[]): RefTensor[] {
  const x = inputs[0]!;
  const g = poolGeometry(node, x);
  const dims = [x.dims[0]!, x.dims[1]!, ...g.out];
  const y = new Float64Array(numel(dims));
  const idx = new Float64Array(numel(dims));
  const planeSize = numel(g.spatial);
  let i = 0;
  forEachWindow(x, g, (_o, p, cells) => {
    let best = -Infinity;
    let at = -1;
    for (const c of cells) {
      const v = x.data[p * planeSize + c]!;
      if (v > best) {
        best = v;
        at = p * planeSize + c;
      }
    }
    y[i] = best;
    idx[i++] = at;
  });
  return [
    { dims, data: y },
    { dims, data: idx },
  ];
}

/** ORT's divisor with count_include_pad: the window clipped to the padded extent, not to the input. */
function paddedWindowSize(o: number[], g: PoolGeometry): number {
  let size = 1;
  for (let a = 0; a < o.length; a++) {
    const start = o[a]! * g.win.strides[a]! - g.win.padsBegin[a]!;
    const end = Math.min(start + (g.win.kernel[a]! - 1) * g.win.dilations[a]! + 1, g.spatial[a]! + g.win.padsEnd[a]!);
    size *= Math.floor((end - start - 1) / g.win.dilations[a]!) + 1;
  }
  return size;
}

function averagePool(node: Node, inputs: (RefTensor | undefined)[]): RefTensor[] {
  const x = inputs[0]!;
  const g = poolGeometry(node, x);
  const includePad = attrInt(node, 'count_include_pad', 0) === 1;
  const dims = [x.dims[0]!, x.dims[1]!, ...g.out];
  const y = new Float64Array(numel(dims));
  const planeSize = numel(g.spatial);
  let i = 0;
  forEachWindow(x, g, (o, p, cells) => {
    let sum = 0;
    for (const c of cells) sum += x.data[p * planeSize + c]!;
    y[i++] = sum / (includePad ? paddedWindowSize(o, g) : cells.length);
  });
  return [{ dims, data: y }];
}

function globalAveragePool(_node: Node, inputs: (RefTensor | undefined)[]): RefTensor[] {
  const x = inputs[0]!;
  const planes = x.dims[0]! * x.dims[1]!;
  const size = numel(x.dims.slice(2));
  const y = new Float64Array(planes);
  for (let p = 0; p < planes; p++) {
    let s = 0;
    for (let j = 0; j < size; j++) s += x.data[p * size + j]!;
    y[p] = s / size;
  }
  return [{ dims: [x.dims[0]!, x.dims[1]!, ...x.dims.slice(2).map(() => 1)], data: y }];
}

registerRefOp('MaxPool', maxPool);
registerRefOp('AveragePool', averagePool);
registerRefOp('GlobalAveragePool', globalAveragePool);
