/** Multi-layer perceptron: flatten, hidden Linear+ReLU layers, classifier. */
import type { CutPoint } from '../../onnx/metadata.js';
import { type Arch, cut } from './common.js';

export const DEFAULT_HIDDEN = [256, 128] as const;

export const mlp: Arch = ({ b, x, classes, ch, hidden = DEFAULT_HIDDEN }) => {
  let h = b.flatten(x, 'flatten');
  const cuts: CutPoint[] = hidden.length > 0 ? [cut('stem', h, 'stem')] : [];
  hidden.forEach((units, i) => {
    const layer = `fc${i + 1}`;
    h = b.relu(b.linear(h, ch(units), layer), `${layer}.relu`);
    cuts.push(cut(i === hidden.length - 1 ? 'features' : layer, h, i === hidden.length - 1 ? 'features' : 'block'));
  });
  if (hidden.length === 0) cuts.push(cut('features', h, 'features'));
  return { logits: b.linear(h, classes, `fc${hidden.length + 1}`, { init: 'uniform' }), cuts };
};
