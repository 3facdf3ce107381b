/** Index of the largest of the k values of row `row` in a row-major [n, k] array (first on ties). */
export function argmaxRow(data: ArrayLike<number>, row: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (data[row * k + j]! > data[row * k + best]!) best = j;
  return best;
}
