import { UserError } from '../util/errors.js';

/** Labels must index the class list; a larger one means a wrong file or a wrong class count. */
export function checkLabels(labels: ArrayLike<number>, classes: number, file: string): void {
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l >= classes) {
      throw new UserError(`${file}: label ${l} (record ${i}) exceeds the class count: the dataset has ${classes} classes (0-${classes - 1})`);
    }
  }
}
