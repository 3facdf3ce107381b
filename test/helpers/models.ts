/** Tiny hand-made models for tests that need exact, known outputs. */
import type { Model } from '../../src/onnx/types.js';
import { createModel, emptyGraph } from '../../src/onnx/graph.js';
import { float32 } from '../../src/onnx/tensor.js';
import { setLabels, type OutputLabel } from '../../src/onnx/metadata.js';

/**
 * A classifier over [N, C, H, W] images that ignores its input and always outputs the
 * same logits (`bias`): its arg-max is fixed, so its accuracy on any image set is known.
 */
export function constantClassifier(bias: number[], shape: [number, number, number] = [1, 28, 28], labels?: OutputLabel[]): Model {
  const g = emptyGraph('constant_classifier');
  const [c, h, w] = shape;
  const features = c * h * w;
  const k = bias.length;
  g.inputs.push({ name: 'input', dtype: 'float32', shape: ['N', c, h, w] });
  g.initializers.set('fc.weight', float32([k, features]));
  g.initializers.set('fc.bias', float32([k], bias));
  g.nodes.push({ name: 'flatten', opType: 'Flatten', inputs: ['input'], outputs: ['features'], attributes: { axis: { kind: 'int', value: 1 } } });
  g.nodes.push({
    name: 'fc',
    opType: 'Gemm',
    inputs: ['features', 'fc.weight', 'fc.bias'],
    outputs: ['logits'],
    attributes: { transB: { kind: 'int', value: 1 } },
  });
  g.outputs.push({ name: 'logits', dtype: 'float32', shape: ['N', k] });
  const m = createModel(g);
  if (labels) setLabels(m, labels);
  return m;
}

/** onehot(k) of length n, as logits */
export const onehot = (n: number, k: number): number[] => Array.from({ length: n }, (_, i) => (i === k ? 1 : 0));
