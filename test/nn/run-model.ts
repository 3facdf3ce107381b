/** Runs IR models through onnxruntime-node for the nn tests. */
import * as ort from 'onnxruntime-node';
import type { Model } from '../../src/onnx/types.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { cloneModel } from '../../src/onnx/graph.js';
import { Rng } from '../../src/util/random.js';

export interface RunResult {
  /** tensor name -> [dims, values] */
  outputs: Map<string, { dims: number[]; data: Float32Array }>;
}

/** Deterministic input values in [-1, 1). */
export function randomInput(n: number, seed = 7): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.uniform(-1, 1));
}

/**
 * Runs `model` on `inputs`; `taps` lists intermediate tensors to return too (added as
 * graph outputs on a copy, so the model itself is unchanged).
 */
export async function runModel(model: Model, inputs: Record<string, { dims: number[]; data: Float32Array }>, taps: readonly string[] = []): Promise<RunResult> {
  const m = cloneModel(model);
  for (const t of taps) {
    if (m.graph.outputs.some((o) => o.name === t)) continue;
    m.graph.outputs.push({ name: t, dtype: 'float32' });
  }
  const session = await ort.InferenceSession.create(encodeModel(m), { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(inputs)) feeds[k] = new ort.Tensor('float32', v.data, v.dims);
    const res = await session.run(feeds);
    const outputs = new Map<string, { dims: number[]; data: Float32Array }>();
    for (const [k, v] of Object.entries(res)) outputs.set(k, { dims: [...v.dims], data: v.data as Float32Array });
    return { outputs };
  } finally {
    await session.release();
  }
}

/** The builder's recorded shape of every intermediate tensor, with the batch dim set to `batch`. */
export function recordedShapes(model: Model, batch: number): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const v of [...model.graph.valueInfo.values(), ...model.graph.outputs]) {
    m.set(
      v.name,
      (v.shape ?? []).map((d) => (typeof d === 'number' ? d : batch)),
    );
  }
  return m;
}
