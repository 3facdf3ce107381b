/**
 * Gradient rules for Gemm and MatMul. Products are written as Gemm with transpose flags
 * where both sides are matrices, so no Transpose nodes are needed in the common case.
 */
import type { GradContext, GradRule } from '../types.js';
import { attrFloat, attrInt, float, int, ints } from '../../onnx/graph.js';
import { emit1, scalarConstant, reshape } from '../grad.js';

/** alpha * op(a) * op(b) as one Gemm node. */
function gemm(c: GradContext, a: string, b: string, transA: boolean, transB: boolean, alpha: number, hint: string): string {
  const attrs = { transA: int(transA ? 1 : 0), transB: int(transB ? 1 : 0), ...(alpha !== 1 ? { alpha: float(alpha) } : {}) };
  return emit1(c, 'Gemm', [a, b], attrs, hint);
}

/**
 * Y = alpha * A' B' + beta * C with A' = transA ? A^T : A (likewise B'):
 * dA' = alpha dY B'^T, dB' = alpha A'^T dY, dC = beta dY summed over broadcast axes.
 */
const gemmRule: GradRule = (c) => {
  const [a, b, bias] = c.node.inputs as [string, string, string?];
  const dY = c.dOutputs[0]!;
  const transA = attrInt(c.node, 'transA', 0) === 1;
  const transB = attrInt(c.node, 'transB', 0) === 1;
  const alpha = attrFloat(c.node, 'alpha', 1);
  const beta = attrFloat(c.node, 'beta', 1);
  const out: (string | undefined)[] = [];
  if (c.needs[0]) out[0] = transA ? gemm(c, b, dY, transB, true, alpha, 'dA') : gemm(c, dY, b, false, !transB, alpha, 'dA');
  if (c.needs[1]) out[1] = transB ? gemm(c, dY, a, true, transA, alpha, 'dB') : gemm(c, a, dY, !transA, false, alpha, 'dB');
  if (bias && c.needs[2]) {
    const scaled = beta === 1 ? dY : emit1(c, 'Mul', [dY, scalarConstant(c, beta)]);
    out[2] = c.unbroadcast(scaled, c.shape(dY), c.shape(bias));
  }
  return out;
};

/** Swaps the last two axes. */
function transposeLast(c: GradContext, t: string): string {
  const rank = c.shape(t).length;
  const perm = Array.from({ length: rank }, (_, i) => (i < rank - 2 ? i : rank === i + 2 ? i + 1 : i - 1));
  return emit1(c, 'Transpose', [t], { perm: ints(perm) });
}

/**
 * MatMul with numpy semantics: 1-D operands are promoted to matrices (and the added
 * axis dropped from the result), leading axes broadcast. Gradients are computed on the
 * promoted shapes, summed over broadcast axes, then reshaped to the operand's shape.
 */
const matmulRule: GradRule = (c) => {
  const [a, b] = c.node.inputs as [string, string];
  const sa = c.shape(a);
  const sb = c.shape(b);
  const a2 = sa.length === 1 ? [1, sa[0]!] : sa;
  const b2 = sb.length === 1 ? [sb[0]!, 1] : sb;
  const batch = c.shape(c.node.outputs[0]!).slice(0, -2 + (sa.length === 1 ? 1 : 0) + (sb.length === 1 ? 1 : 0));
  const yShape = [...(a2.length > 2 || b2.length > 2 ? batch : []), a2.at(-2)!, b2.at(-1)!];
  let dY = c.dOutputs[0]!;
  if (c.shape(dY).length !== yShape.length) dY = reshape(c, dY, yShape);
  const A = sa.length === 1 ? reshape(c, a, a2) : a;
  const B = sb.length === 1 ? reshape(c, b, b2) : b;
  const out: (string | undefined)[] = [];
  if (c.needs[0]) out[0] = fit(c, matmulGradA(c, dY, B, yShape, b2), a2, sa);
  if (c.needs[1]) out[1] = fit(c, matmulGradB(c, A, dY, a2, yShape), b2, sb);
  return out;
};

/** dA = dY B^T */
function matmulGradA(c: GradContext, dY: string, b: string, yShape: number[], b2: number[]): string {
  if (yShape.length === 2 && b2.length === 2) return gemm(c, dY, b, false, true, 1, 'dA');
  return emit1(c, 'MatMul', [dY, transposeLast(c, b)], {}, 'dA');
}

/** dB = A^T dY; a batched A against a matrix B folds the batch into one Gemm. */
function matmulGradB(c: GradContext, a: string, dY: string, a2: number[], yShape: number[]): string {
  if (a2.length === 2 && yShape.length === 2) return gemm(c, a, dY, true, false, 1, 'dB');
  const k = a2.at(-1)!;
  const n = yShape.at(-1)!;
  if (yShape.length > 2 && c.shape(c.node.inputs[1]!).length <= 2 && a2.length === yShape.length) {
    return gemm(c, reshape(c, a, [-1, k]), reshape(c, dY, [-1, n]), true, false, 1, 'dB');
  }
  return emit1(c, 'MatMul', [transposeLast(c, a), dY], {}, 'dB');
}

/** Sums a promoted-shape gradient over broadcast axes and restores the operand's own shape. */
function fit(c: GradContext, g: string, promoted: number[], original: number[]): string {
  const summed = c.unbroadcast(g, c.shape(g), promoted);
  return original.length === promoted.length ? summed : reshape(c, summed, original);
}

export const RULES: Record<string, GradRule> = {
  Gemm: gemmRule,
  MatMul: matmulRule,
};
