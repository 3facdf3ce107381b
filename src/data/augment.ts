/**
 * In-place transforms of float CHW images inside a batch buffer. Augmentation runs on
 * [0, 1] pixels before normalisation, so crop padding is black, as in the usual
 * pad-crop-flip-normalise pipeline.
 */
import { OptionError, UserError } from '../util/errors.js';
import type { Augmentation, ImageShape, Normalization } from './types.js';
import type { Rng } from '../util/random.js';

/**
 * Random crop with zero padding: pad by `padding` on each side, then crop back to the
 * original size at offset (oy, ox) in [0, 2*padding]. `scratch` holds one image.
 */
export function padCrop(x: Float32Array, at: number, shape: ImageShape, padding: number, oy: number, ox: number, scratch: Float32Array): void {
  const [c, h, w] = shape;
  const n = c * h * w;
  scratch.set(x.subarray(at, at + n));
  const dy = oy - padding;
  const dx = ox - padding;
  for (let ch = 0; ch < c; ch++) {
    const plane = at + ch * h * w;
    for (let y = 0; y < h; y++) {
      const sy = y + dy;
      const row = plane + y * w;
      if (sy < 0 || sy >= h) { x.fill(0, row, row + w); continue; }
      const srcRow = ch * h * w + sy * w;
      for (let xx = 0; xx < w; xx++) {
        const sx = xx + dx;
        x[row + xx] = sx >= 0 && sx < w ? scratch[srcRow + sx]! : 0;
      }
    }
  }
}

export function flipHorizontal(x: Float32Array, at: number, shape: ImageShape): void {
  const [c, h, w] = shape;
  for (let r = 0; r < c * h; r++) {
    const row = at + r * w;
    for (let i = 0, j = w - 1; i < j; i++, j--) {
      const t = x[row + i]!; x[row + i] = x[row + j]!; x[row + j] = t;
    }
  }
}

/**
 * Applies the augmentation to `count` images; per image the draws are: crop offsets
 * (y then x) when cropping, then the flip coin when flipping.
 */
export function augmentBatch(x: Float32Array, count: number, shape: ImageShape, aug: Augmentation, rng: Rng): void {
  const n = shape[0] * shape[1] * shape[2];
  const padding = aug.cropPadding ?? 0;
  const scratch = padding > 0 ? new Float32Array(n) : undefined;
  for (let k = 0; k < count; k++) {
    if (scratch) padCrop(x, k * n, shape, padding, rng.int(2 * padding + 1), rng.int(2 * padding + 1), scratch);
    if (aug.flip && rng.next() < 0.5) flipHorizontal(x, k * n, shape);
  }
}

/** x' = (x - mean[c]) / std[c] over `count` CHW images. */
export function normalizeBatch(x: Float32Array, count: number, shape: ImageShape, norm: Normalization): void {
  const [c, h, w] = shape;
  const plane = h * w;
  for (let k = 0; k < count; k++) {
    for (let ch = 0; ch < c; ch++) {
      const mean = norm.mean[ch]!;
      const std = norm.std[ch]!;
      const start = (k * c + ch) * plane;
      for (let j = start; j < start + plane; j++) x[j] = (x[j]! - mean) / std;
    }
  }
}

/**
 * Validates a normalisation for `channels` channels; a single mean/std is applied to
 * every channel. `names` says what to call the two lists in errors; 'options' names them as
 * the caller's `mean` and `std` options (the user gave them).
 */
export function broadcastNormalization(
  norm: Normalization,
  channels: number,
  names: { mean: string; std: string } | 'options' = { mean: 'normalisation mean', std: 'normalisation std' },
): Normalization {
  const fail = (list: 'mean' | 'std', problem: string): UserError =>
    names === 'options' ? new OptionError((o) => `${o(list)} ${problem}`) : new UserError(`${names[list]} ${problem}`);
  const widen = (v: number[], list: 'mean' | 'std'): number[] => {
    if (v.some((x) => !Number.isFinite(x))) throw fail(list, `${v.join(',')} is not all finite numbers`);
    if (v.length === 1) return new Array<number>(channels).fill(v[0]!);
    if (v.length !== channels) {
      const expected = channels === 1 ? 'one value' : `1 or ${channels} values (one per channel)`;
      throw fail(list, `has ${v.length} values, but the input has ${channels} channel${channels === 1 ? '' : 's'}: give ${expected}`);
    }
    return v;
  };
  const mean = widen(norm.mean, 'mean');
  const std = widen(norm.std, 'std');
  if (std.some((s) => !(s > 0))) throw fail('std', `${norm.std.join(',')} must be positive numbers`);
  return { mean, std };
}

export function checkAugmentation(aug: Augmentation, shape: ImageShape): void {
  const p = aug.cropPadding ?? 0;
  if (!Number.isInteger(p) || p < 0) throw new UserError(`crop padding ${p} is not valid: expected a non-negative integer`);
  if (p >= Math.max(shape[1], shape[2]) && p > 0) {
    throw new UserError(`crop padding ${p} is not smaller than the ${shape[1]}x${shape[2]} image`);
  }
}
