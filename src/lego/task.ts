/**
 * A task on one model. Three index spaces meet on the `--task` path: a class id (a
 * dataset label), an output index (one of the model's logits) and a position in the task
 * (0..k-1: the order of the task's classes, and of a component's outputs). TaskOutputs
 * relates them; it is built once per model and passed along, so sample selection, masks
 * and scoring read one mapping instead of each rebuilding its own.
 *
 * @example
 *   const t = taskOutputs(model, train, [3, 5]);
 *   t.classes[1];       // 5: the class at position 1
 *   t.outputs[1];       // the model's logit for class 5
 *   t.outputOf.get(5);  // the same, by class id
 *   t.model.classOf;    // the class id of every output of the model
 */
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { mapOutputs, type OutputMap } from '../runtime/labels.js';
import { UserError } from '../util/errors.js';

export interface TaskOutputs {
  /** the class id at each position, in the task's order */
  readonly classes: readonly number[];
  /** the model's output index for the class at each position */
  readonly outputs: readonly number[];
  /** class id -> output index */
  readonly outputOf: ReadonlyMap<number, number>;
  /** every output of the model: its class id (-1: another dataset's) and label */
  readonly model: OutputMap;
}

/**
 * The task's classes on `model` (read through its label metadata, or the dataset's
 * labels); a UserError for an empty task, a class named twice, or a class the model has
 * no output for. `file` names the model in errors.
 */
export function taskOutputs(model: Model, ds: Dataset, task: readonly number[], file?: string): TaskOutputs {
  if (task.length === 0) throw new UserError('the task names no classes');
  if (new Set(task).size !== task.length) throw new UserError(`the task names a class twice: ${task.join(',')}`);
  const map = mapOutputs(model, ds, file);
  const classOf = Array.from(map.classOf);
  const known = classOf.filter((c) => c >= 0);
  const outputs = task.map((c) => {
    const o = classOf.indexOf(c);
    if (!Number.isInteger(c) || o < 0) {
      throw new UserError(
        `task class ${c} is not one of the model's classes: it classifies classes ${known.join(',')} of ${ds.name}${file ? ` (${file})` : ''}`,
      );
    }
    return o;
  });
  return { classes: [...task], outputs, outputOf: new Map(task.map((c, i) => [c, outputs[i]!])), model: map };
}
