/**
 * Which stitch joins two cuts, chosen from their shapes (or named by the user). Cuts are
 * images [C, H, W], tokens [T, D] (a vision transformer's sequence: T tokens of hidden
 * size D) or flat vectors [F].
 *
 * Image -> image:
 * - same spatial size: 1x1 convolution with bias;
 * - sender larger: convolution with kernel r and stride r, the stride `spatialStride`
 *   chooses: in each dimension the receiver's size is floor(H / r) or ceil(H / r), as
 *   stride-r stages with either rounding produce it (28 -> 14 -> 7 -> 4 with padded
 *   convolutions, 31 -> 15 -> 7 -> 3 with SqueezeNet's unpadded 3x3 pools). A ceil size is
 *   zero-padded at the bottom/right; a floor size leaves the last H - r * h (< r) rows
 *   or columns unread, as the network's own stride-r stage does;
 * - sender smaller: the same r from the receiver's size to the sender's, nearest
 *   upsampling by r, then 1x1: receiver pixel i reads sender pixel min(floor(i / r), h - 1)
 *   (cropped where r * h overshoots, the last row/column repeated where it falls short).
 * Into a flat receiver (the classifier's pooled features): from an image, global average
 * pool + linear (default) or flatten + linear; from tokens, the mean over all tokens +
 * linear (default), flatten + linear, or the class token + linear ('class'); flat into
 * flat: linear.
 *
 * Tokens: a token sequence is a square grid of g x g patch tokens, in row-major order
 * (token e + i*g + j is patch (i, j), as torchvision/timm/Hugging Face ViTs flatten
 * their patch embedding), after e = 0 or 1 leading class token (T = g^2 + e).
 * - tokens -> tokens with the same count: a linear map on the hidden size, applied to
 *   every token alike (token t of the sender feeds token t of the receiver);
 * - tokens -> image: the class token dropped, the patch tokens unpatchified to a
 *   [D, g, g] image, then the image -> image stitch (1x1, strided conv or upsampling);
 * - image -> tokens: the image -> image stitch onto the receiver's grid [D_B, g, g]
 *   (patchify: a conv with kernel = stride = r when the sender is r times larger), the
 *   result flattened to g^2 patch tokens; the receiver's class token, when it has one,
 *   is a separate linear map of the sender's global average pool (so it carries the
 *   image's content, as a trained class token does at every depth);
 * - tokens -> tokens with different counts: unpatchify, image -> image, patchify; the
 *   receiver's class token from the sender's class token (linear) or, when the sender
 *   has none, from the mean of its tokens.
 * Optional BatchNorm before/after the stitch (Bansal et al.'s BN-conv-BN) applies to image
 * and flat sides only.
 */
import { OptionError, UserError } from '../util/errors.js';

export type StitchKind = 'conv1x1' | 'downsample' | 'upsample' | 'pool-linear' | 'flatten-linear' | 'linear' | 'token-linear' | 'class-linear';

/** A token sequence seen as an image: `extra` leading class tokens, then an h x w grid. */
export interface TokenGrid {
  extra: number;
  grid: [number, number];
}

/** A stitch's structure: everything needed to build it, nothing about its weights. */
export interface StitchSpec {
  kind: StitchKind;
  /** sender shape [C, H, W], [T, D] or [F] */
  from: number[];
  /** receiver shape */
  to: number[];
  /** spatial factor (downsample/upsample), else 1 */
  ratio: number;
  /** BatchNorm on the sender's activation before the map (Bansal et al.'s BN-conv-BN) */
  bnBefore: boolean;
  /** BatchNorm on the stitch output */
  bnAfter: boolean;
  /** a token sender read as the image [D, h, w] of its patch tokens (its class tokens dropped) */
  unpatchify?: TokenGrid;
  /**
   * a token receiver written from the image [D, h, w]: its patch tokens, after `extra`
   * class tokens made by a second linear map from the sender's class token ('class') or
   * its global mean ('pool': average pool of an image, mean of tokens)
   */
  patchify?: TokenGrid & { classFrom: 'pool' | 'class' };
}

/** How a token sender feeds a flat receiver: mean over tokens, all tokens flattened, or the class token. */
export const FLAT_FROMS = ['pool', 'flatten', 'class'] as const;
export type FlatFrom = (typeof FLAT_FROMS)[number];

export interface PlanOptions {
  /** into a flat receiver: 'pool' (default), 'flatten', or 'class' (a token sender's class token) */
  flat?: FlatFrom;
  /** force a kind (checked against the shapes) */
  kind?: StitchKind;
  bnBefore?: boolean;
  bnAfter?: boolean;
}

/**
 * @example planStitch([32, 28, 28], [64, 14, 14]) // { kind: 'downsample', ratio: 2, ... }
 * @example planStitch([64, 16, 16], [65, 128])     // downsample r=2 onto the 8x8 grid, patchify, class token from the pool
 */
export function planStitch(from: readonly number[], to: readonly number[], opts: PlanOptions = {}): StitchSpec {
  const base = { from: [...from], to: [...to], bnBefore: !!opts.bnBefore, bnAfter: !!opts.bnAfter };
  const desc = `${fmt(from)} -> ${fmt(to)}`;
  const flat = opts.flat ?? 'pool';
  let spec: StitchSpec;
  if (to.length === 1) {
    if (from.length === 1) spec = { ...base, kind: 'linear', ratio: 1 };
    else if (from.length === 3) {
      if (flat === 'class')
        throw new OptionError((o) => `cannot stitch ${desc} with ${o('flat', 'class')}: an image sender has no class token (use pool or flatten)`);
      spec = { ...base, kind: flat === 'pool' ? 'pool-linear' : 'flatten-linear', ratio: 1 };
    } else if (from.length === 2) {
      if (flat === 'class' && tokenGrid(from[0]!)?.extra !== 1) {
        throw new OptionError((o) => `cannot stitch ${desc} with ${o('flat', 'class')}: ${from[0]} tokens are not a class token and a square grid`);
      }
      spec = { ...base, kind: flat === 'pool' ? 'pool-linear' : flat === 'flatten' ? 'flatten-linear' : 'class-linear', ratio: 1 };
    } else throw new UserError(`cannot stitch ${desc}: the sender must be an image [C,H,W], tokens [T,D] or a flat vector`);
  } else if (to.length === 3) {
    if (from.length === 1) {
      throw new UserError(
        `cannot stitch ${desc}: a flat sender vector cannot feed a spatial receiver tensor; choose a later receiver cut or an earlier sender cut`,
      );
    }
    if (from.length === 2) {
      const unpatchify = gridOf(from, desc, 'sender');
      spec = { ...base, ...spatialKind([from[1]!, ...unpatchify.grid], to as number[], desc), unpatchify };
    } else if (from.length === 3) spec = { ...base, ...spatialKind(from as number[], to as number[], desc) };
    else throw new UserError(`cannot stitch ${desc}: the sender must be an image [C,H,W], tokens [T,D] or a flat vector`);
  } else if (to.length === 2) {
    if (from.length === 1) {
      throw new UserError(`cannot stitch ${desc}: a flat sender vector cannot feed a token receiver; choose a later receiver cut or an earlier sender cut`);
    }
    if (from.length === 2 && from[0] === to[0]) spec = { ...base, kind: 'token-linear', ratio: 1 };
    else {
      const out = gridOf(to, desc, 'receiver');
      const unpatchify = from.length === 2 ? gridOf(from, desc, 'sender') : undefined;
      const image = unpatchify ? [from[1]!, ...unpatchify.grid] : [...from];
      if (image.length !== 3) throw new UserError(`cannot stitch ${desc}: the sender must be an image [C,H,W], tokens [T,D] or a flat vector`);
      const classFrom = unpatchify?.extra ? 'class' : 'pool';
      spec = { ...base, ...spatialKind(image, [to[1]!, ...out.grid], desc), ...(unpatchify ? { unpatchify } : {}), patchify: { ...out, classFrom } };
    }
  } else {
    throw new UserError(`cannot stitch ${desc}: the receiver must be an image [C,H,W], tokens [T,D] or a flat vector`);
  }
  if ((spec.bnBefore && from.length === 2) || (spec.bnAfter && to.length === 2)) {
    const side = spec.bnBefore && from.length === 2 ? 'bnBefore' : 'bnAfter';
    throw new OptionError((o) => `cannot stitch ${desc} with BatchNorm (${o(side, true)}): it applies to image and flat cuts, not to tokens`);
  }
  if (opts.kind && opts.kind !== spec.kind) {
    const ok = (opts.kind === 'flatten-linear' && spec.kind === 'pool-linear') || (opts.kind === 'pool-linear' && spec.kind === 'flatten-linear');
    if (!ok) throw new UserError(`stitch kind "${opts.kind}" does not fit ${desc}; these shapes take a ${spec.kind} stitch`);
    spec.kind = opts.kind;
  }
  return spec;
}

/**
 * A token count as a class token and a square grid: T = g^2 (no class token) or
 * g^2 + 1 (one leading class token); undefined when it is neither.
 */
export function tokenGrid(tokens: number): TokenGrid | undefined {
  for (const extra of [0, 1]) {
    const g = Math.round(Math.sqrt(tokens - extra));
    if (g >= 1 && g * g === tokens - extra) return { extra, grid: [g, g] };
  }
  return undefined;
}

function gridOf(shape: readonly number[], desc: string, side: string): TokenGrid {
  const g = tokenGrid(shape[0]!);
  if (!g) throw new UserError(`cannot stitch ${desc}: the ${side}'s ${shape[0]} tokens are not a square grid of patches (g*g, or g*g + 1 with a class token)`);
  return g;
}

/** The image the learned map reads: the sender, or its patch tokens as [D, h, w]. */
export function coreFrom(s: StitchSpec): number[] {
  return s.unpatchify ? [s.from[1]!, ...s.unpatchify.grid] : s.from;
}

/** What the learned map writes: the receiver, or the image [D, h, w] of its patch tokens. */
export function coreTo(s: StitchSpec): number[] {
  return s.patchify ? [s.to[1]!, ...s.patchify.grid] : s.to;
}

function spatialKind(from: number[], to: number[], desc: string): { kind: StitchKind; ratio: number } {
  const a = from.slice(1),
    b = to.slice(1);
  if (a.every((x, d) => x === b[d])) return { kind: 'conv1x1', ratio: 1 };
  const down = a.every((x, d) => x >= b[d]!);
  if (down || a.every((x, d) => x <= b[d]!)) {
    const r = down ? spatialStride(a, b) : spatialStride(b, a);
    if (r) return { kind: down ? 'downsample' : 'upsample', ratio: r };
  }
  throw new UserError(
    `cannot stitch ${desc}: the spatial sizes ${a.join('x')} and ${b.join('x')} differ by no integer stride r ` +
      `(the smaller size must be floor or ceil of larger / r, with the same r for height and width)`,
  );
}

/**
 * The stride r between a larger spatial size and a smaller one, or undefined when none fits.
 * r fits when in every dimension the smaller size is floor(larger / r) or ceil(larger / r):
 * what a stride-r stage gives with either rounding, and what any chain of k stride-2
 * stages gives for r = 2^k (each rounding floor or ceil keeps the size between
 * floor(x / 2^k) and ceil(x / 2^k)). Of the fitting r, a power of 2 (networks reduce by
 * stride-2 stages) is taken first, then any integer (stride-3 pools); among several the
 * one closest to the size ratio (summed over the dimensions, in log scale), the smaller on
 * a tie. Several fit only where the smaller size is 1 or 2 (9 -> 2: r = 4 as two floor
 * stages give it, not 8 with 7 rows of padding).
 *
 * @example spatialStride([15, 15], [7, 7]) // 2 (floor)
 * @example spatialStride([7, 8], [4, 4])   // 2 (ceil in the first dimension)
 * @example spatialStride([31, 31], [3, 3]) // 8 (floor; 9 and 10 fit too, but are no power of 2)
 */
export function spatialStride(large: readonly number[], small: readonly number[]): number | undefined {
  if (small.some((s) => s < 1)) return undefined;
  const fits = (r: number): boolean => large.every((x, d) => Math.floor(x / r) === small[d] || Math.ceil(x / r) === small[d]);
  const distance = (r: number): number => large.reduce((sum, x, d) => sum + Math.abs(Math.log(r) - Math.log(x / small[d]!)), 0);
  // floor(x / r) = s or ceil(x / r) = s needs x / (s + 1) < r < x / (s - 1): only these r can fit
  const lo = Math.max(2, ...large.map((x, d) => Math.floor(x / (small[d]! + 1)) + 1));
  const hi = Math.min(...large.map((x, d) => (small[d]! > 1 ? Math.ceil(x / (small[d]! - 1)) : 2 * x)));
  let power: number | undefined, integer: number | undefined;
  for (let r = lo; r <= hi; r++) {
    if (!fits(r)) continue;
    if (Number.isInteger(Math.log2(r)) && (power === undefined || distance(r) < distance(power))) power = r;
    if (integer === undefined || distance(r) < distance(integer)) integer = r;
  }
  return power ?? integer;
}

/**
 * Zero padding at the bottom/right that a stride-r convolution needs to produce `out` from
 * `size`: out * r - size when out = ceil(size / r); none when out = floor(size / r), where
 * the convolution without padding already stops after out windows and leaves the last
 * size - out * r (< r) pixels unread.
 */
export const padFor = (size: number, out: number, r: number): number => Math.max(0, out * r - size);

/**
 * Rows or columns the upsampling stitch repeats at the bottom/right of the sender (size
 * `small`) before upsampling by r, so that r times it covers the receiver's `large`: 1 where
 * small = floor(large / r) < large / r, else 0. With them (and the crop of what overshoots),
 * receiver pixel i reads sender pixel min(floor(i / r), small - 1).
 */
export const edgeFor = (small: number, large: number, r: number): number => Math.max(0, Math.ceil(large / r) - small);

export const fmt = (s: readonly number[]): string => `[${s.join('x')}]`;

/** A short stable key of a spec (sessions for equal specs are shared). */
export function specKey(s: StitchSpec): string {
  const tok = (g: TokenGrid | undefined, p: string): string => (g ? `:${p}${g.extra}+${g.grid.join('x')}` : '');
  return (
    `${s.kind}:${s.from.join('x')}->${s.to.join('x')}:r${s.ratio}${s.bnBefore ? ':bnb' : ''}${s.bnAfter ? ':bna' : ''}` +
    `${tok(s.unpatchify, 'u')}${tok(s.patchify, 'p')}${s.patchify ? `:${s.patchify.classFrom}` : ''}`
  );
}
