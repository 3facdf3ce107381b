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
import { STITCH_IN, STITCH_OUT } from './build.js';

/** The sender's part: image input -> the cut tensor. */
export function prefixModel(a: Model, tensor: string): Model {
  return extractSubgraph(a, [a.graph.inputs[0]!.name], [tensor]);
}

/** The receiver's part: the cut tensor -> the first graph output (logits). */
export function suffixModel(b: Model, tensor: string, file = 'the receiver'): Model {
  const out = b.graph.outputs[0]!.name;
  if (tensor === out) throw new UserError(`receiver cut "${tensor}" is the output of ${file}; nothing of it is left to stitch into (choose an earlier cut)`);
  if (tensor === b.graph.inputs[0]!.name) throw new UserError(`receiver cut "${tensor}" is the input of ${file}; a stitch into the input would bypass the sender`);
  return extractSubgraph(b, [tensor], [out]);
}

/**
 * The stitch followed by the receiver's suffix: input `s/x` (sender activation), output
 * the receiver's logits (`b/<name>`). Stitch tensors are prefixed `s/`, so its
 * parameters are `s/stitch.map.weight` etc.; training freezes everything else.
 */
export function stitchWithSuffix(stitch: Model, suffix: Model): Model {
  const to = suffix.graph.inputs[0]!.name;
  return mergeGraphs([{ model: stitch, prefix: 's/' }, { model: suffix, prefix: 'b/' }], {
    connect: [{ from: `s/${STITCH_OUT}`, to: `b/${to}` }], outputs: [`b/${suffix.graph.outputs[0]!.name}`], name: 'stitch_suffix',
  });
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
export function composeStitched(a: Model, senderTensor: string, stitch: Model, b: Model, receiverTensor: string, parents: string[] = []): Model {
  const pre = prefixModel(a, senderTensor);
  const suf = suffixModel(b, receiverTensor);
  const input = a.graph.inputs[0]!.name;
  const m = mergeGraphs([{ model: pre, prefix: 'a/' }, { model: stitch, prefix: STITCH_PREFIX }, { model: suf, prefix: 'b/' }], {
    shared: [input],
    connect: [{ from: `a/${senderTensor}`, to: `${STITCH_PREFIX}${STITCH_IN}` }, { from: `${STITCH_PREFIX}${STITCH_OUT}`, to: `b/${receiverTensor}` }],
    outputs: [`b/${b.graph.outputs[0]!.name}`],
    name: 'stitched',
  });
  const labels = getLabels(b);
  if (labels) setLabels(m, labels);
  const spec = getInputSpec(a);
  if (spec) setInputSpec(m, spec);
  setProvenance(m, { operation: 'stitched', parents, sender: senderTensor, receiver: receiverTensor });
  return m;
}
