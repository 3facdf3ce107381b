/** Shared by the disassembly tests: tiny models, logits of a model on a batch, masked-vs-pruned comparison. */
import type { Model } from '../../src/onnx/types.js';
import { ModelSession } from '../../src/runtime/session.js';
import { Rng } from '../../src/util/random.js';

/** A seeded batch of standard-normal images [n, ...shape]. */
export function randomBatch(n: number, shape: readonly number[], seed = 1): { dims: number[]; data: Float32Array } {
  const rng = new Rng(seed);
  const size = n * shape.reduce((a, b) => a * b, 1);
  return { dims: [n, ...shape], data: Float32Array.from({ length: size }, () => rng.normal()) };
}

/** Logits of `model` on a batch. */
export async function logitsOf(model: Model, batch: { dims: number[]; data: Float32Array }): Promise<Float32Array> {
  const s = await ModelSession.create(model, { threads: 1 });
  try {
    const out = await s.run({ [model.graph.inputs[0]!.name]: batch });
    return out[model.graph.outputs[0]!.name]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

/** Largest |a - b| relative to max(1, |b|). */
export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / Math.max(1, Math.abs(b[i]!)));
  return worst;
}

import type { Dataset } from '../../src/data/types.js';

/** The first `n` images of a dataset, as a dataset: keeps sample selection fast in tests. */
export function firstImages(ds: Dataset, n: number): Dataset {
  const size = Math.min(n, ds.size);
  return {
    name: ds.name,
    split: ds.split,
    source: `${ds.source} (first ${size} images)`,
    shape: ds.shape,
    classes: ds.classes,
    ...(ds.classNames ? { classNames: ds.classNames } : {}),
    size,
    label: (i: number) => ds.label(i),
    read: (indices: readonly number[], out: Float32Array) => ds.read(indices, out),
  };
}
