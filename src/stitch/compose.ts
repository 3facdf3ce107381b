/**
 * Stitched networks: the prefix of the sender A (input -> sender cut), the stitch, and
 * the suffix of the receiver B (receiver cut -> output), in one ONNX graph. Both networks
 * are frozen: their weights stay constants and their BatchNorms are in inference form
 * (running statistics), so nothing drifts from cell to cell.
 */
import type { Model } from '../onnx/types.js';
import { extractSubgraph } from '../onnx/extract.js';
import { mergeGraphs } from '../onnx/merge.js';
import { getInputSpec, getLabels, setInputSpec, setLabels, setProvenance } from '../onnx/metadata.js';
import { UserError } from '../util/errors.js';
import { ints, uniqueName } from '../onnx/graph.js';
import { imageInput } from '../onnx/dominators.js';
import { detachShapeReads } from '../onnx/cuts.js';
import { STITCH_IN, STITCH_OUT } from './build.js';

/** A cut tensor, where its batch axis is (0 when absent) and, for a channels-last image, its channel axis. */
export type CutRef = string | { tensor: string; batchAxis?: number; channelAxis?: number };

const refOf = (c: CutRef): { tensor: string; batchAxis: number; channelAxis?: number } =>
  typeof c === 'string'
    ? { tensor: c, batchAxis: 0 }
    : { tensor: c.tensor, batchAxis: c.batchAxis ?? 0, ...(c.channelAxis !== undefined ? { channelAxis: c.channelAxis } : {}) };

/**
 * The sender's part: image input -> the cut tensor, always batch-first and, for an image,
 * channels-first (a sequence-first token tensor [T, N, D] is transposed to [N, T, D], a
 * channels-last image [N, H, W, C] to [N, C, H, W], under the same name).
 */
export function prefixModel(a: Model, cut: CutRef): Model {
  const r = refOf(cut);
  return readingOrderAt(extractSubgraph(a, [imageInput(a)], [r.tensor]), 'output', r);
}

/**
 * The receiver's part: the cut tensor -> the first graph output (logits). Its input is
 * batch-first (and an image channels-first) whatever the export's layout (transposed back inside).
 */
export function suffixModel(b: Model, cut: CutRef, file = 'the receiver'): Model {
  const r = refOf(cut);
  const { tensor, batchAxis } = r;
  const out = b.graph.outputs[0]!.name;
  if (tensor === out) throw new UserError(`receiver cut "${tensor}" is the output of ${file}; nothing of it is left to stitch into (choose an earlier cut)`);
  if (tensor === imageInput(b)) throw new UserError(`receiver cut "${tensor}" is the input of ${file}; a stitch into the input would bypass the sender`);
  return readingOrderAt(extractSubgraph(detachShapeReads(b, tensor, batchAxis), [tensor], [out]), 'input', r);
}

/**
 * Puts the cut tensor, the one output of a prefix or the one input of a suffix, in the
 * order stitching reads it (batch first, then an image's channels): inside, the tensor
 * keeps the export's layout under a fresh name, and a Transpose stands between it and
 * the boundary.
 */
function readingOrderAt(
  m: Model,
  side: 'input' | 'output',
  { tensor, batchAxis, channelAxis }: { tensor: string; batchAxis: number; channelAxis?: number },
): Model {
  if (batchAxis === 0 && channelAxis === undefined) return m;
  const g = m.graph;
  const exported = uniqueName(g, `${tensor}::as_exported`);
  const boundary = side === 'output' ? g.outputs : g.inputs;
  const value = boundary[0]!;
  const perm = batchFirstPerm(value.shape?.length ?? 0, batchAxis, channelAxis);
  if (side === 'output') {
    for (const n of g.nodes) n.outputs = n.outputs.map((o) => (o === tensor ? exported : o));
    g.nodes.push({ name: `${tensor}::batch_first`, opType: 'Transpose', inputs: [exported], outputs: [tensor], attributes: { perm: ints(perm) } });
  } else {
    for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === tensor ? exported : i));
    const back = perm.map((_, j) => perm.indexOf(j));
    g.nodes.unshift({ name: `${tensor}::as_exported`, opType: 'Transpose', inputs: [tensor], outputs: [exported], attributes: { perm: ints(back) } });
  }
  boundary.splice(0, boundary.length, { ...value, ...(value.shape ? { shape: perm.map((p) => value.shape![p]!) } : {}) });
  return m;
}

/**
 * The permutation moving axis `batchAxis` of a rank-`rank` tensor to the front, then
 * `channelAxis` when given (a channels-last image), the others in order.
 *
 * @example batchFirstPerm(3, 1) // [1, 0, 2]: [T, N, D] -> [N, T, D]
 * @example batchFirstPerm(4, 0, 3) // [0, 3, 1, 2]: [N, H, W, C] -> [N, C, H, W]
 */
export function batchFirstPerm(rank: number, batchAxis: number, channelAxis?: number): number[] {
  const lead = channelAxis === undefined || channelAxis === batchAxis ? [batchAxis] : [batchAxis, channelAxis];
  return [...lead, ...Array.from({ length: rank }, (_, i) => i).filter((i) => !lead.includes(i))];
}

/**
 * The stitch followed by the receiver's suffix: input `s/x` (sender activation), output
 * the receiver's logits (`b/<name>`). Stitch tensors are prefixed `s/`, so its
 * parameters are `s/stitch.map.weight` etc.; training freezes everything else.
 */
export function stitchWithSuffix(stitch: Model, suffix: Model): Model {
  const to = suffix.graph.inputs[0]!.name;
  return mergeGraphs(
    [
      { model: stitch, prefix: 's/' },
      { model: suffix, prefix: 'b/' },
    ],
    {
      connect: [{ from: `s/${STITCH_OUT}`, to: `b/${to}` }],
      outputs: [`b/${suffix.graph.outputs[0]!.name}`],
      name: 'stitch_suffix',
    },
  );
}

export const STITCH_PREFIX = 's/';

/**
 * The whole stitched network A[:cutA] -> stitch -> B[cutB:] as a standalone classifier:
 * A's input (and normalisation), B's output labels, provenance "stitched".
 *
 * @example
 *   const s = buildStitch(planStitch(shapeA, shapeB), { kind: 'identity' });
 *   const m = composeStitched(a, 'layer1.0.relu2', s, b, 'layer1.0.relu2');
 *   await evaluate(m, testSet);
 */
export function composeStitched(a: Model, sender: CutRef, stitch: Model, b: Model, receiver: CutRef, parents: string[] = []): Model {
  const senderTensor = refOf(sender).tensor,
    receiverTensor = refOf(receiver).tensor;
  const pre = prefixModel(a, sender);
  const suf = suffixModel(b, receiver);
  const input = imageInput(a);
  const m = mergeGraphs(
    [
      { model: pre, prefix: 'a/' },
      { model: stitch, prefix: STITCH_PREFIX },
      { model: suf, prefix: 'b/' },
    ],
    {
      shared: [input],
      connect: [
        { from: `a/${senderTensor}`, to: `${STITCH_PREFIX}${STITCH_IN}` },
        { from: `${STITCH_PREFIX}${STITCH_OUT}`, to: `b/${receiverTensor}` },
      ],
      outputs: [`b/${b.graph.outputs[0]!.name}`],
      name: 'stitched',
    },
  );
  const labels = getLabels(b);
  if (labels) setLabels(m, labels);
  const spec = getInputSpec(a);
  if (spec) setInputSpec(m, spec);
  setProvenance(m, { operation: 'stitched', parents, sender: senderTensor, receiver: receiverTensor });
  return m;
}
