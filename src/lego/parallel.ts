/**
 * Assembly of components that do not share a topology (e.g. a VGG component and a
 * ResNet component): each runs as its own branch on the shared image input, and the
 * logits are joined by a Concat. A branch whose model expects a different input
 * normalisation gets a per-channel affine adapter in front, so that every branch sees
 * exactly the input it was trained on.
 *
 * @example
 *   const m = mergeParallel([vggPart, resnetPart]); // logits = [vgg logits, resnet logits]
 */
import type { Model } from '../onnx/types.js';
import { cloneModel, int } from '../onnx/graph.js';
import { float32 } from '../onnx/tensor.js';
import { mergeGraphs } from '../onnx/merge.js';
import { renameTensor } from '../onnx/prune.js';
import { inferShapes } from '../onnx/shapes.js';

/** x_branch = x * scale[c] + shift[c], per channel. */
export interface InputAdapter {
  scale: number[];
  shift: number[];
}

export const ASSEMBLED_INPUT = 'input';
export const ASSEMBLED_OUTPUT = 'logits';

/**
 * One model running every component side by side; its output `logits` is the
 * concatenation of the components' outputs in order. adapters[k] (optional) converts the
 * assembled model's input into component k's expected input.
 */
export function mergeParallel(models: readonly Model[], adapters: readonly (InputAdapter | undefined)[] = []): Model {
  const parts = models.map((m, k) => ({ model: branch(m, adapters[k]), prefix: `c${k}/` }));
  const merged = mergeGraphs(parts, { shared: [ASSEMBLED_INPUT], name: 'assembled' });
  const g = merged.graph;
  const branchOutputs = g.outputs.map((o) => o.name);
  g.nodes.push({ name: ASSEMBLED_OUTPUT, opType: 'Concat', inputs: branchOutputs, outputs: [ASSEMBLED_OUTPUT], attributes: { axis: int(1) } });
  g.outputs = [{ name: ASSEMBLED_OUTPUT, dtype: 'float32' }];
  const shapes = inferShapes(merged);
  g.outputs = [shapes.get(ASSEMBLED_OUTPUT)!];
  return merged;
}

/** A copy whose input is called `input`, with the adapter (if any) in front of it. */
function branch(model: Model, adapter: InputAdapter | undefined): Model {
  const m = cloneModel(model);
  const g = m.graph;
  const input = g.inputs[0]!;
  if (adapter) {
    const inner = `${ASSEMBLED_INPUT}.adapted`;
    renameTensor(g, input.name, inner);
    g.inputs = [{ ...input, name: ASSEMBLED_INPUT }];
    const c = adapter.scale.length;
    g.initializers.set('adapter.scale', float32([1, c, 1, 1], adapter.scale));
    g.initializers.set('adapter.shift', float32([1, c, 1, 1], adapter.shift));
    g.nodes.unshift(
      { name: 'adapter.mul', opType: 'Mul', inputs: [ASSEMBLED_INPUT, 'adapter.scale'], outputs: ['adapter.scaled'], attributes: {} },
      { name: 'adapter.add', opType: 'Add', inputs: ['adapter.scaled', 'adapter.shift'], outputs: [inner], attributes: {} },
    );
  } else {
    renameTensor(g, input.name, ASSEMBLED_INPUT);
  }
  return m;
}
