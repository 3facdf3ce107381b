/** Reference (float64) Gemm and MatMul, by the textbook triple loop. */
import type { Node } from '../../../src/onnx/types.js';
import { attrFloat, attrInt } from '../../../src/onnx/graph.js';
import { registerRefOp, type RefTensor } from './registry.js';
import { broadcastDims, broadcastIndex, mapBroadcast, refTensor, unravel } from './elementwise.js';

type Inputs = (RefTensor | undefined)[];

function gemm(node: Node, [a, b, c]: Inputs): RefTensor[] {
  const transA = attrInt(node, 'transA', 0) === 1;
  const transB = attrInt(node, 'transB', 0) === 1;
  const alpha = attrFloat(node, 'alpha', 1);
  const beta = attrFloat(node, 'beta', 1);
  const [m, k] = transA ? [a!.dims[1]!, a!.dims[0]!] : [a!.dims[0]!, a!.dims[1]!];
  const n = transB ? b!.dims[0]! : b!.dims[1]!;
  const A = (i: number, p: number): number => a!.data[transA ? p * m + i : i * k + p]!;
  const B = (p: number, j: number): number => b!.data[transB ? j * k + p : p * n + j]!;
  const out = refTensor([m, n]);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += A(i, p) * B(p, j);
      out.data[i * n + j] = alpha * s;
    }
  }
  return [c ? mapBroadcast([out, c], ([y, z]) => y! + beta * z!) : out];
}

/** numpy matmul: 1-D operands promoted to matrices (the added axis dropped), batch axes broadcast. */
function matmul(_: Node, [a, b]: Inputs): RefTensor[] {
  const A: RefTensor = a!.dims.length === 1 ? { dims: [1, a!.dims[0]!], data: a!.data } : a!;
  const B: RefTensor = b!.dims.length === 1 ? { dims: [b!.dims[0]!, 1], data: b!.data } : b!;
  const [m, k] = A.dims.slice(-2) as [number, number];
  const n = B.dims.at(-1)!;
  const batch = broadcastDims([A.dims.slice(0, -2), B.dims.slice(0, -2)]);
  const dims = [...batch, m, n];
  const out = refTensor(dims);
  const batchOf = (t: RefTensor, idx: number[]): number => broadcastIndex({ dims: t.dims.slice(0, -2), data: t.data }, idx);
  for (let o = 0; o < out.data.length; o++) {
    const idx = unravel(o, dims);
    const [i, j] = idx.slice(-2) as [number, number];
    const bi = idx.slice(0, -2);
    const aBase = batchOf(A, bi) * m * k;
    const bBase = batchOf(B, bi) * k * n;
    let s = 0;
    for (let p = 0; p < k; p++) s += A.data[aBase + i * k + p]! * B.data[bBase + p * n + j]!;
    out.data[o] = s;
  }
  const final = [...batch, ...(a!.dims.length === 1 ? [] : [m]), ...(b!.dims.length === 1 ? [] : [n])];
  return [{ dims: final, data: out.data }];
}

registerRefOp('Gemm', gemm);
registerRefOp('MatMul', matmul);
