/**
 * Features at a cut as CKA compares them: one row per image, batch-first whatever the
 * export's layout (a sequence-first token tensor [T, N, D] is transposed, and so is a
 * channels-last image [N, H, W, C], to [N, C, H, W]), flattened or mean-pooled over
 * positions. The views are extra nodes on the model, so one tapped inference pass yields
 * every cut's rows.
 *
 * Pooling ('--pool'):
 * - none: every cut flattened (an image C*H*W features, tokens T*D, a vector F);
 * - tokens: token cuts averaged over their tokens (class token included) to [D], other cuts flattened;
 * - all: token cuts over tokens and image cuts over pixels (global average pool) to [C].
 */
import type { Model } from '../onnx/types.js';
import { cloneModel, int, ints, opsetVersion, uniqueName } from '../onnx/graph.js';
import { int64 } from '../onnx/tensor.js';
import { batchFirstPerm } from './compose.js';
import { OptionError } from '../util/errors.js';

export const CKA_POOLS = ['none', 'tokens', 'all'] as const;
export type CkaPool = (typeof CKA_POOLS)[number];

/** A cut as CKA reads it. */
export interface ViewCut {
  name: string;
  tensor: string;
  /** per-image shape, batch axis excluded (an image channels-first) */
  shape: readonly number[];
  batchAxis?: number;
  /** a channels-last image's channel axis in the tensor (cuts.ts StitchCut) */
  channelAxis?: number;
}

/** What one view taps: the tensor holding [N, ...shape] rows, and that per-image shape. */
export interface FeatureView {
  tensor: string;
  shape: number[];
}

/** Whether a cut of this shape is pooled under `pool`. */
export function pooled(shape: readonly number[], pool: CkaPool): boolean {
  if (shape.length === 2) return pool !== 'none';
  return shape.length === 3 && pool === 'all';
}

/** The per-image feature shape CKA sees at a cut. */
export function viewShape(shape: readonly number[], pool: CkaPool): number[] {
  if (!pooled(shape, pool)) return [...shape];
  return shape.length === 2 ? [shape[1]!] : [shape[0]!];
}

/**
 * The model with view nodes added for the cuts that need them, and each cut's view (in
 * the order given). Cuts already batch-first and not pooled are read as they are.
 *
 * @example const { model: m, views } = featureViews(vit, cuts, 'tokens'); // taps: views.map((v) => v.tensor)
 */
export function featureViews(model: Model, cuts: readonly ViewCut[], pool: CkaPool): { model: Model; views: FeatureView[] } {
  if (!CKA_POOLS.includes(pool)) throw new OptionError((o) => `${o('pool')} expects ${CKA_POOLS.join(', ')}, got "${pool}"`);
  const reordered = (c: ViewCut): boolean => (c.batchAxis ?? 0) !== 0 || c.channelAxis !== undefined;
  const need = cuts.some((c) => reordered(c) || pooled(c.shape, pool));
  if (!need) return { model, views: cuts.map((c) => ({ tensor: c.tensor, shape: [...c.shape] })) };
  const m = cloneModel(model);
  const g = m.graph;
  const made = new Map<string, FeatureView>();
  const views = cuts.map((c) => {
    const key = `${c.tensor}|${pool}`;
    const have = made.get(key);
    if (have) return have;
    let t = c.tensor;
    if (reordered(c)) {
      const out = uniqueName(g, `${c.tensor}::batch_first`);
      const perm = batchFirstPerm(c.shape.length + 1, c.batchAxis ?? 0, c.channelAxis);
      g.nodes.push({ name: out, opType: 'Transpose', inputs: [t], outputs: [out], attributes: { perm: ints(perm) } });
      t = out;
    }
    if (pooled(c.shape, pool)) {
      const out = uniqueName(g, `${c.tensor}::pooled`);
      const axes = c.shape.length === 2 ? [1] : [2, 3];
      // ReduceMean takes its axes as an attribute up to opset 17 and as an input from 18
      if (opsetVersion(m) >= 18) {
        const a = uniqueName(g, `${out}.axes`);
        g.initializers.set(a, int64([axes.length], axes));
        g.nodes.push({ name: out, opType: 'ReduceMean', inputs: [t, a], outputs: [out], attributes: { keepdims: int(0) } });
      } else {
        g.nodes.push({ name: out, opType: 'ReduceMean', inputs: [t], outputs: [out], attributes: { axes: ints(axes), keepdims: int(0) } });
      }
      t = out;
    }
    const view = { tensor: t, shape: viewShape(c.shape, pool) };
    made.set(key, view);
    return view;
  });
  return { model: m, views };
}
