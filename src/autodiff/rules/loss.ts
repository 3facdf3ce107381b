/**
 * The losses appended to a forward graph: each emits the loss value and, directly, the
 * gradient of the loss with respect to the logits (the seed of the reverse pass), so
 * the loss nodes themselves are never differentiated.
 */
import type { Loss } from '../types.js';
import type { GraphWriter } from '../grad.js';
import { int } from '../../onnx/graph.js';
import { float32, int64 } from '../../onnx/tensor.js';
import { UserError } from '../../util/errors.js';

export interface AppendedLoss {
  /** scalar float32 loss tensor */
  loss: string;
  /** d loss / d logits */
  dLogits: string;
}

/**
 * Emits `loss` of `logits` against the graph input `target` (int64 class indices [B]
 * for cross-entropy, float32 shaped like the logits for mse).
 */
export function appendLoss(w: GraphWriter, kind: Loss, logits: string, target: string, lossName: string): AppendedLoss {
  if (kind === 'cross-entropy') return crossEntropy(w, logits, target, lossName);
  if (kind === 'mse') return meanSquaredError(w, logits, target, lossName);
  throw new UserError(`unknown loss "${String(kind)}": expected cross-entropy or mse`);
}

/** dtype and shape of the target input each loss expects, given the logits' shape. */
export function targetInfo(kind: Loss, logits: readonly number[]): { dtype: 'int64' | 'float32'; shape: number[] } {
  return kind === 'cross-entropy' ? { dtype: 'int64', shape: [logits[0]!] } : { dtype: 'float32', shape: [...logits] };
}

/**
 * Mean over the batch of -log softmax(logits)[target]. LogSoftmax subtracts the row
 * maximum (log-sum-exp), so large logits do not overflow. d logits = (softmax - onehot) / B.
 */
function crossEntropy(w: GraphWriter, logits: string, target: string, lossName: string): AppendedLoss {
  const shape = w.shape(logits);
  if (shape.length !== 2) throw new UserError(`cross-entropy needs logits of shape [batch, classes], the model's output "${logits}" is [${shape.join(',')}]`);
  const [batch, classes] = shape as [number, number];
  const logProbs = w.emit('LogSoftmax', [logits], { axis: int(1) }, 1, 'loss/log_softmax')[0]!;
  const column = w.emit('Unsqueeze', [target, w.ints([1], 'loss/axes')], {}, 1, 'loss/target_column')[0]!;
  const picked = w.emit('GatherElements', [logProbs, column], { axis: int(1) }, 1, 'loss/picked')[0]!;
  const mean = w.emit('ReduceMean', [picked], { keepdims: int(0) }, 1, 'loss/mean')[0]!;
  const loss = w.emit('Neg', [mean], {}, [lossName], 'loss')[0]!;
  const probs = w.emit('Exp', [logProbs], {}, 1, 'loss/softmax')[0]!;
  const depth = w.constant(int64([], [classes]), 'loss/depth');
  const onOff = w.constant(float32([2], [0, 1]), 'loss/onehot_values');
  const onehot = w.emit('OneHot', [target, depth, onOff], { axis: int(-1) }, 1, 'loss/onehot')[0]!;
  const diff = w.emit('Sub', [probs, onehot], {}, 1, 'loss/residual')[0]!;
  const dLogits = w.emit('Mul', [diff, w.scalar(1 / batch, 'loss/scale')], {}, 1, 'grad/logits')[0]!;
  return { loss, dLogits };
}

/** Mean over all elements of (logits - target)^2; d logits = 2 (logits - target) / count. */
function meanSquaredError(w: GraphWriter, logits: string, target: string, lossName: string): AppendedLoss {
  const count = w.shape(logits).reduce((a, b) => a * b, 1);
  const diff = w.emit('Sub', [logits, target], {}, 1, 'loss/residual')[0]!;
  const square = w.emit('Mul', [diff, diff], {}, 1, 'loss/square')[0]!;
  const loss = w.emit('ReduceMean', [square], { keepdims: int(0) }, [lossName], 'loss')[0]!;
  const dLogits = w.emit('Mul', [diff, w.scalar(2 / count, 'loss/scale')], {}, 1, 'grad/logits')[0]!;
  return { loss, dLogits };
}
