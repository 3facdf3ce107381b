/**
 * Where networks can be cut for stitching and CKA: a model's recorded cut points (zoo
 * metadata), else its block-level cuts found from the graph (onnx/blocks.ts), or any
 * tensor that every input-to-output path passes through; each with its per-image
 * shape and batch axis, and the default sender/receiver lists of a grid.
 *
 * Per-image shapes are [C, H, W] (image), [T, D] (tokens: T tokens of hidden size D, as
 * in a vision transformer) or [F] (flat). A token tensor may be exported sequence-first
 * ([T, N, D]); `batchAxis` says where the batch is, and every reader of activations gets
 * them batch-first. An image may be exported channels-last ([N, H, W, C]: Swin
 * Transformer stages); its shape is still [C, H, W], `channelAxis` says where the
 * channels are, and readers get it channels-first.
 *
 * A tensor without one batch axis and fixed per-image sizes (Swin's windows, [N*nW, 49, C])
 * is no cut for stitching: listings and default grids leave it out, and naming it gets the reason.
 */
import type { Model } from '../onnx/types.js';
import { cutPoints, resolveCut, validCutTensors } from '../onnx/cuts.js';
import type { CutPoint } from '../onnx/metadata.js';
import { batchLayouts, checkCut, type BatchLayout } from '../onnx/dominators.js';
import { OptionError, UserError } from '../util/errors.js';

/** A cut with the shape of its tensor without the batch axis ([C, H, W], [T, D] or [F]). */
export interface StitchCut {
  name: string;
  tensor: string;
  kind: CutPoint['kind'];
  shape: number[];
  /** the tensor's batch axis (absent: 0; 1 for sequence-first tokens) */
  batchAxis?: number;
  /** the tensor's channel axis for a channels-last image (3 for [N, H, W, C]); absent when channels follow the batch */
  channelAxis?: number;
}

/** What a per-image shape holds. */
export type CutLayout = 'image' | 'tokens' | 'flat';

export function layoutOf(shape: readonly number[]): CutLayout {
  return shape.length === 3 ? 'image' : shape.length === 2 ? 'tokens' : 'flat';
}

/** Words for a shape in messages: "image 64x8x8", "tokens 65x128", "vector 512". */
export function describeShape(shape: readonly number[]): string {
  const kind = { image: 'image', tokens: 'tokens', flat: 'vector' }[layoutOf(shape)];
  return `${kind} ${shape.join('x')}`;
}

/**
 * The model's default cut points with shapes: the recorded ones, or the stem, the blocks
 * and the pooled features found from the graph.
 *
 * @example listCuts(openModel('r.onnx')).map((c) => `${c.name} ${c.shape.join('x')}`)
 */
export function listCuts(model: Model, file = 'the model'): StitchCut[] {
  const layouts = batchLayouts(model);
  return cutPoints(model)
    .filter((c) => c.kind === 'logits' || usable(layouts.get(c.tensor)))
    .map((c) => withShape(model, c, file));
}

/** A layout stitching can read: a batch axis, and an image, tokens or a vector per image. */
const usable = (l: BatchLayout | string | undefined): boolean => typeof l === 'object' && l.shape.length >= 1 && l.shape.length <= 3;

/**
 * Every valid cut of the model (a tensor on every path from the input to the output,
 * with a per-image shape stitching can use), named where a cut point names it.
 */
export function allCuts(model: Model, file = 'the model'): StitchCut[] {
  const named = new Map(cutPoints(model).map((c) => [c.tensor, c]));
  const layouts = batchLayouts(model);
  const out: StitchCut[] = [];
  for (const tensor of validCutTensors(model)) {
    if (!usable(layouts.get(tensor))) continue;
    const c = named.get(tensor) ?? { name: tensor, tensor, kind: 'other' as const };
    out.push(withShape(model, c, file));
  }
  for (const c of named.values()) if (c.kind === 'logits' && !out.some((o) => o.tensor === c.tensor)) out.push(withShape(model, c, file));
  return out;
}

/** One cut by name (cut point or tensor name), with its shape; a tensor that is not a cut is refused. */
export function stitchCut(model: Model, name: string, file = 'the model'): StitchCut {
  const tensor = resolveCut(model, name, file);
  const rec = cutPoints(model).find((c) => c.name === name || c.tensor === name);
  return withShape(model, { name, tensor, kind: rec?.kind ?? 'other' }, file);
}

function withShape(model: Model, c: CutPoint, file: string): StitchCut {
  if (c.kind !== 'logits') checkCut(model, c.tensor, file);
  const l = batchLayouts(model).get(c.tensor);
  if (typeof l !== 'object') {
    const shape = l ?? 'not known';
    throw new UserError(`cut "${c.name}" of ${file}: the shape of tensor "${c.tensor}" is ${shape}; stitching needs a batch axis and fixed per-image sizes`);
  }
  if (l.shape.length < 1 || l.shape.length > 3) {
    const shape = l.shape.join('x') || 'scalar';
    throw new UserError(
      `cut "${c.name}" of ${file}: tensor "${c.tensor}" has per-image shape ${shape}; a cut must be an image [C,H,W], tokens [T,D] or a vector [F]`,
    );
  }
  return {
    name: c.name,
    tensor: c.tensor,
    kind: c.kind,
    shape: l.shape,
    ...(l.batchAxis ? { batchAxis: l.batchAxis } : {}),
    ...(l.channelAxis !== undefined ? { channelAxis: l.channelAxis } : {}),
  };
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
export function chooseCuts(
  model: Model,
  names: readonly string[] | undefined,
  fallback: (c: StitchCut[]) => StitchCut[],
  file: string,
  role: string,
): StitchCut[] {
  if (names && names.length) return names.map((n) => stitchCut(model, n, file));
  const all = listCuts(model, file);
  const chosen = fallback(all);
  if (!chosen.length) throw new OptionError((o) => `${file} has no cut points usable as ${role}s; name tensors with ${o(`${role}s`)} (see ${o('listCuts')})`);
  return chosen;
}
