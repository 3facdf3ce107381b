/**
 * Float64 reference LayerNormalization, and BatchNormalization over [N, C, ...] inputs (any rank >= 2): the
 * inference form (running statistics), and training_mode=1 as ONNX defines it (batch
 * statistics with the biased variance; outputs Y, updated running mean and variance).
 */
import type { Node } from '../../../src/onnx/types.js';
import { attrFloat, attrInt } from '../../../src/onnx/graph.js';
import { numel } from '../../../src/onnx/tensor.js';
import { registerRefOp, type RefTensor } from './registry.js';
import { mapBinary } from './elementwise.js';

/** Per-channel mean and biased variance over every axis but 1. */
export function channelMoments(x: RefTensor): { mean: Float64Array; variance: Float64Array } {
  const [n, c] = x.dims as [number, number];
  const size = numel(x.dims.slice(2));
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  const count = n * size;
  for (let ci = 0; ci < c; ci++) {
    let s = 0;
    for (let ni = 0; ni < n; ni++) for (let j = 0; j < size; j++) s += x.data[(ni * c + ci) * size + j]!;
    const mu = s / count;
    let v = 0;
    for (let ni = 0; ni < n; ni++) for (let j = 0; j < size; j++) v += (x.data[(ni * c + ci) * size + j]! - mu) ** 2;
    mean[ci] = mu;
    variance[ci] = v / count;
  }
  return { mean, variance };
}

function batchNormalization(node: Node, inputs: (RefTensor | undefined)[]): RefTensor[] {
  const [x, scale, bias, runMean, runVar] = inputs as RefTensor[];
  const eps = attrFloat(node, 'epsilon', 1e-5);
  const training = attrInt(node, 'training_mode', 0) === 1;
  const [n, c] = x!.dims as [number, number];
  const size = numel(x!.dims.slice(2));
  const { mean, variance } = training ? channelMoments(x!) : { mean: runMean!.data, variance: runVar!.data };
  const y = new Float64Array(x!.data.length);
  for (let ni = 0; ni < n; ni++) {
    for (let ci = 0; ci < c; ci++) {
      const k = scale!.data[ci]! / Math.sqrt(variance[ci]! + eps);
      for (let j = 0; j < size; j++) {
        const i = (ni * c + ci) * size + j;
        y[i] = (x!.data[i]! - mean[ci]!) * k + bias!.data[ci]!;
      }
    }
  }
  const out: RefTensor[] = [{ dims: [...x!.dims], data: y }];
  if (training) {
    const momentum = attrFloat(node, 'momentum', 0.9);
    const blend = (running: RefTensor, batch: Float64Array): RefTensor => ({
      dims: [c],
      data: Float64Array.from(running.data, (r, i) => r * momentum + batch[i]! * (1 - momentum)),
    });
    out.push(blend(runMean!, mean), blend(runVar!, variance));
  }
  return out;
}

/**
 * LayerNormalization over the axes from `axis` on: Y, and the optional Mean and
 * InvStdDev outputs (shape of X with the normalised axes set to 1). Scale and B
 * broadcast against X from the right.
 */
function layerNormalization(node: Node, [x, scale, bias]: (RefTensor | undefined)[]): RefTensor[] {
  const rank = x!.dims.length;
  const raw = attrInt(node, 'axis', -1);
  const axis = raw < 0 ? raw + rank : raw;
  const eps = attrFloat(node, 'epsilon', 1e-5);
  const d = numel(x!.dims.slice(axis));
  const rows = x!.data.length / d;
  const normalized = new Float64Array(x!.data.length);
  const mean = new Float64Array(rows);
  const invstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const row = x!.data.subarray(r * d, (r + 1) * d);
    const mu = row.reduce((s, v) => s + v, 0) / d;
    const variance = row.reduce((s, v) => s + (v - mu) ** 2, 0) / d;
    mean[r] = mu;
    invstd[r] = 1 / Math.sqrt(variance + eps);
    row.forEach((v, j) => (normalized[r * d + j] = (v - mu) * invstd[r]!));
  }
  const xhat: RefTensor = { dims: [...x!.dims], data: normalized };
  const scaled = mapBinary(xhat, scale!, (v, s) => v * s);
  const y = bias ? mapBinary(scaled, bias, (v, c) => v + c) : scaled;
  const statDims = x!.dims.map((v, i) => (i < axis ? v : 1));
  return [y, { dims: statDims, data: mean }, { dims: [...statDims], data: invstd }];
}

registerRefOp('BatchNormalization', batchNormalization);
registerRefOp('LayerNormalization', layerNormalization);
