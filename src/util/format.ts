/** Formats a fraction as a percentage with two decimals: 0.9123 -> "91.23%". */
export const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
