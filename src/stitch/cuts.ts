/**
 * Where networks can be cut for stitching: a model's recorded cut points (zoo metadata)
 * or any named tensor, each with its per-sample shape, and the default sender/receiver
 * lists of a stitching grid.
 */
import type { Model } from '../onnx/types.js';
import { cutPoints, resolveCut } from '../onnx/cuts.js';
import type { CutPoint } from '../onnx/metadata.js';
import { inferShapes } from '../onnx/shapes.js';
import { UserError } from '../util/errors.js';

/** A cut with the shape of its tensor, without the batch axis ([C, H, W] or [features]). */
export interface StitchCut {
  name: string;
  tensor: string;
  kind: CutPoint['kind'];
  shape: number[];
}

/**
 * The model's cut points with shapes. A model without recorded cuts lists the outputs
 * of its Relu/Add/Flatten/pooling nodes, the usual places to cut a network by hand.
 *
 * @example listCuts(openModel('r.onnx')).map((c) => `${c.name} ${c.shape.join('x')}`)
 */
export function listCuts(model: Model, file = 'the model'): StitchCut[] {
  const shapes = inferShapes(model);
  const recorded = cutPoints(model);
  const cuts: CutPoint[] = recorded.length ? recorded : model.graph.nodes
    .filter((n) => CANDIDATE_OPS.has(n.opType))
    .map((n) => ({ name: n.outputs[0]!, tensor: n.outputs[0]!, kind: 'other' as const }));
  return cuts.map((c) => ({ ...c, shape: shapeOf(shapes, c.tensor, c.name, file) }));
}

const CANDIDATE_OPS = new Set(['Relu', 'Add', 'Flatten', 'GlobalAveragePool', 'MaxPool', 'AveragePool', 'Gemm']);

/** One cut by name (cut point or tensor name), with its shape. */
export function stitchCut(model: Model, name: string, file = 'the model'): StitchCut {
  const tensor = resolveCut(model, name, file);
  const rec = cutPoints(model).find((c) => c.name === name || c.tensor === name);
  return { name, tensor, kind: rec?.kind ?? 'other', shape: shapeOf(inferShapes(model), tensor, name, file) };
}

function shapeOf(shapes: ReturnType<typeof inferShapes>, tensor: string, name: string, file: string): number[] {
  const s = shapes.get(tensor)?.shape;
  const dims = s?.slice(1);
  if (!s || !dims || dims.some((d) => typeof d !== 'number')) {
    throw new UserError(`cut "${name}" of ${file}: the shape of tensor "${tensor}" is not known (${s ? s.join('x') : 'no shape'}); stitching needs fixed per-image shapes`);
  }
  return dims as number[];
}

/**
 * Default senders: every cut before the classifier (not the pooled features, not the
 * logits), i.e. the stem and every block.
 */
export function defaultSenders(cuts: readonly StitchCut[]): StitchCut[] {
  return cuts.filter((c) => c.kind !== 'logits' && c.kind !== 'features');
}

/**
 * Default receivers: "into" every block and into the classifier. Cutting a receiver after
 * its last block and before the pooled features would only leave pooling between the
 * two, so that block is left out when a features cut exists (as in the reference grid:
 * columns into block 1..4 and into the classifier).
 */
export function defaultReceivers(cuts: readonly StitchCut[]): StitchCut[] {
  const usable = cuts.filter((c) => c.kind !== 'logits');
  const hasFeatures = usable.some((c) => c.kind === 'features');
  const blocks = usable.filter((c) => c.kind === 'block');
  const last = blocks[blocks.length - 1];
  return usable.filter((c) => !(hasFeatures && c === last));
}

/** Resolves a list of names, or the defaults when none are given. */
export function chooseCuts(model: Model, names: readonly string[] | undefined, fallback: (c: StitchCut[]) => StitchCut[], file: string, role: string): StitchCut[] {
  if (names && names.length) return names.map((n) => stitchCut(model, n, file));
  const all = listCuts(model, file);
  const chosen = fallback(all);
  if (!chosen.length) throw new UserError(`${file} records no cut points usable as ${role}s; name tensors with --${role}s (see modelsmith stitch --list-cuts)`);
  return chosen;
}
