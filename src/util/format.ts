/** Formats a fraction as a percentage with two decimals: 0.9123 -> "91.23%". */
export const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;

/** "a", "a or b", "a, b or c" */
export function alternatives(words: readonly string[]): string {
  return words.length <= 2 ? words.join(' or ') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}
