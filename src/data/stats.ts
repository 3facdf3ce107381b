/** Per-channel statistics of a dataset, for data without a published normalisation. */
import type { Dataset, Normalization } from './types.js';

/**
 * Mean and standard deviation per channel over `indices` (default: the whole dataset),
 * read in batches so memory stays bounded. Accumulates in float64.
 *
 * @example
 *   const norm = await computeNormalization(await openDataset('folder:photos', 'train'));
 */
export async function computeNormalization(ds: Dataset, indices?: readonly number[], batchSize = 256): Promise<Normalization> {
  const [c, h, w] = ds.shape;
  const plane = h * w;
  const list = indices ?? Array.from({ length: ds.size }, (_, i) => i);
  const sum = new Float64Array(c);
  const sq = new Float64Array(c);
  const buf = new Float32Array(batchSize * c * plane);
  for (let at = 0; at < list.length; at += batchSize) {
    const part = list.slice(at, at + batchSize);
    await ds.read(part, buf);
    for (let k = 0; k < part.length; k++) {
      for (let ch = 0; ch < c; ch++) {
        const start = (k * c + ch) * plane;
        for (let j = start; j < start + plane; j++) { const v = buf[j]!; sum[ch] += v; sq[ch] += v * v; }
      }
    }
  }
  const n = list.length * plane;
  const mean = Array.from(sum, (s) => (n > 0 ? s / n : 0));
  const std = Array.from(sq, (s, ch) => Math.sqrt(Math.max(n > 0 ? s / n - mean[ch]! ** 2 : 0, 0)) || 1);
  return { mean, std };
}
