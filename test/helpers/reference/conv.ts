/**
 * Float64 reference Conv and ConvTranspose (any spatial rank, strides, pads, auto_pad,
 * dilations, groups), written as the direct sums of their definitions so that they
 * share no code with the gradient rules they check.
 */
import type { Node } from '../../../src/onnx/types.js';
import { attrInt, attrInts, attrString } from '../../../src/onnx/graph.js';
import { samePads } from '../../../src/onnx/dims.js';
import { numel } from '../../../src/onnx/tensor.js';
import { registerRefOp, type RefTensor } from './registry.js';

/** Row-major strides of a shape. */
export function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) s[i] = s[i + 1]! * dims[i + 1]!;
  return s;
}

/** Every multi-index of `dims`, row-major. */
export function* indices(dims: readonly number[]): Generator<number[]> {
  const n = numel(dims);
  const idx = new Array<number>(dims.length).fill(0);
  for (let f = 0; f < n; f++) {
    yield idx;
    for (let a = dims.length - 1; a >= 0; a--) {
      if (++idx[a]! < dims[a]!) break;
      idx[a] = 0;
    }
  }
}

/** Flat offset of a spatial position `pos` inside the [spatial] block starting at `base`. */
export function spatialOffset(pos: readonly number[], spatialStrides: readonly number[]): number {
  let o = 0;
  for (let i = 0; i < pos.length; i++) o += pos[i]! * spatialStrides[i]!;
  return o;
}

export interface RefWindow {
  kernel: number[];
  strides: number[];
  dilations: number[];
  padsBegin: number[];
  padsEnd: number[];
}

/** kernel_shape/strides/dilations/pads/auto_pad of a windowed node over `spatial`. */
export function refWindow(node: Node, spatial: readonly number[], kernel: number[]): RefWindow {
  const r = spatial.length;
  const strides = attrInts(node, 'strides', new Array<number>(r).fill(1));
  const dilations = attrInts(node, 'dilations', new Array<number>(r).fill(1));
  const pads = attrInts(node, 'pads', new Array<number>(2 * r).fill(0));
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  let padsBegin = pads.slice(0, r);
  let padsEnd = pads.slice(r);
  if (autoPad === 'VALID') {
    padsBegin = padsBegin.map(() => 0);
    padsEnd = padsEnd.map(() => 0);
  } else if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    const same = spatial.map((s, i) => samePads(s, kernel[i]!, strides[i]!, dilations[i]!, autoPad === 'SAME_UPPER'));
    padsBegin = same.map((p) => p[0]);
    padsEnd = same.map((p) => p[1]);
  }
  return { kernel, strides, dilations, padsBegin, padsEnd };
}

function conv(node: Node, inputs: (RefTensor | undefined)[]): RefTensor[] {
  const [x, w, b] = inputs as [RefTensor, RefTensor, RefTensor | undefined];
  const [n, c] = x.dims as [number, number];
  const [m, cg] = w.dims as [number, number];
  const group = attrInt(node, 'group', 1);
  const spatial = x.dims.slice(2);
  const win = refWindow(node, spatial, attrInts(node, 'kernel_shape') ?? w.dims.slice(2));
  const out = spatial.map((s, i) => Math.floor((s + win.padsBegin[i]! + win.padsEnd[i]! - (win.kernel[i]! - 1) * win.dilations[i]! - 1) / win.strides[i]!) + 1);
  const y: RefTensor = { dims: [n, m, ...out], data: new Float64Array(n * m * numel(out)) };
  const xs = stridesOf(spatial);
  const xSize = numel(spatial);
  const kSize = numel(win.kernel);
  const mg = m / group;
  let yi = 0;
  for (let ni = 0; ni < n; ni++) {
    for (let mi = 0; mi < m; mi++) {
      const g = Math.floor(mi / mg);
      for (const o of indices(out)) {
        let acc = b ? b.data[mi]! : 0;
        for (const k of indices(win.kernel)) {
          const pos = o.map((oi, a) => oi * win.strides[a]! + k[a]! * win.dilations[a]! - win.padsBegin[a]!);
          if (pos.some((p, a) => p < 0 || p >= spatial[a]!)) continue;
          const off = spatialOffset(pos, xs);
          const kOff = spatialOffset(k, stridesOf(win.kernel));
          for (let ci = 0; ci < cg; ci++) {
            acc += x.data[(ni * c + g * cg + ci) * xSize + off]! * w.data[(mi * cg + ci) * kSize + kOff]!;
          }
        }
        y.data[yi++] = acc;
      }
    }
  }
  return [y];
}

/** Output size and pads of ConvTranspose per spatial axis, as ONNX defines them. */
function transposeGeometry(node: Node, spatial: number[], kernel: number[]): { out: number[]; padsBegin: number[] } {
  const r = spatial.length;
  const strides = attrInts(node, 'strides', new Array<number>(r).fill(1));
  const dilations = attrInts(node, 'dilations', new Array<number>(r).fill(1));
  const outPad = attrInts(node, 'output_padding', new Array<number>(r).fill(0));
  const autoPad = attrString(node, 'auto_pad', 'NOTSET');
  const full = spatial.map((s, i) => strides[i]! * (s - 1) + outPad[i]! + (kernel[i]! - 1) * dilations[i]! + 1);
  const explicit = attrInts(node, 'output_shape');
  const target = explicit?.slice(-r) ?? (autoPad.startsWith('SAME') ? spatial.map((s, i) => s * strides[i]!) : undefined);
  if (target) {
    // ONNX: total padding splits evenly, the odd one at the end unless SAME_LOWER.
    const padsBegin = full.map((f, i) => {
      const total = f - target[i]!;
      return autoPad === 'SAME_LOWER' ? total - Math.floor(total / 2) : Math.floor(total / 2);
    });
    return { out: target, padsBegin };
  }
  const pads = autoPad === 'VALID' ? new Array<number>(2 * r).fill(0) : attrInts(node, 'pads', new Array<number>(2 * r).fill(0));
  return { out: full.map((f, i) => f - pads[i]! - pads[i + r]!), padsBegin: pads.slice(0, r) };
}

function convTranspose(node: Node, inputs: (RefTensor | undefined)[]): RefTensor[] {
  const [x, w, b] = inputs as [RefTensor, RefTensor, RefTensor | undefined];
  const [n, c] = x.dims as [number, number];
  const mg = w.dims[1]!;
  const group = attrInt(node, 'group', 1);
  const m = mg * group;
  const cg = c / group;
  const spatial = x.dims.slice(2);
  const kernel = attrInts(node, 'kernel_shape') ?? w.dims.slice(2);
  const r = spatial.length;
  const strides = attrInts(node, 'strides', new Array<number>(r).fill(1));
  const dilations = attrInts(node, 'dilations', new Array<number>(r).fill(1));
  const { out, padsBegin } = transposeGeometry(node, spatial, kernel);
  const oSize = numel(out);
  const os = stridesOf(out);
  const kSize = numel(kernel);
  const ks = stridesOf(kernel);
  const y: RefTensor = { dims: [n, m, ...out], data: new Float64Array(n * m * oSize) };
  for (let ni = 0; ni < n; ni++) {
    for (let mi = 0; mi < m; mi++) {
      const base = (ni * m + mi) * oSize;
      if (b) for (let i = 0; i < oSize; i++) y.data[base + i] = b.data[mi]!;
    }
  }
  let xi = 0;
  for (let ni = 0; ni < n; ni++) {
    for (let ci = 0; ci < c; ci++) {
      const g = Math.floor(ci / cg);
      for (const p of indices(spatial)) {
        const v = x.data[xi++]!;
        for (const k of indices(kernel)) {
          const pos = p.map((pi, a) => pi * strides[a]! + k[a]! * dilations[a]! - padsBegin[a]!);
          if (pos.some((q, a) => q < 0 || q >= out[a]!)) continue;
          const off = spatialOffset(pos, os);
          const kOff = spatialOffset(k, ks);
          for (let mo = 0; mo < mg; mo++) {
            y.data[(ni * m + g * mg + mo) * oSize + off] += v * w.data[(ci * mg + mo) * kSize + kOff]!;
          }
        }
      }
    }
  }
  return [y];
}

registerRefOp('Conv', conv);
registerRefOp('ConvTranspose', convTranspose);
