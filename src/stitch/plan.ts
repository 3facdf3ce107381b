/**
 * Which stitch joins two cuts, chosen from their shapes (or named by the user):
 * - same spatial size: 1x1 convolution with bias;
 * - sender larger by r = 2^k: convolution with kernel r and stride r (zero-padded at the
 *   bottom/right when the receiver's size is ceil(H / r), as stride-2 stages produce it:
 *   28 -> 14 -> 7 -> 4);
 * - sender smaller by r: nearest upsampling by r (cropped to the receiver's size), then 1x1;
 * - into a flat receiver (the classifier's pooled features) from a spatial tensor:
 *   global average pool + linear (default) or flatten + linear;
 * - flat into flat: linear.
 */
import { UserError } from '../util/errors.js';

export type StitchKind = 'conv1x1' | 'downsample' | 'upsample' | 'pool-linear' | 'flatten-linear' | 'linear';

/** A stitch's structure: everything needed to build it, nothing about its weights. */
export interface StitchSpec {
  kind: StitchKind;
  /** sender shape [C, H, W] or [F] */
  from: number[];
  /** receiver shape */
  to: number[];
  /** spatial factor (downsample/upsample), else 1 */
  ratio: number;
  /** BatchNorm on the sender's activation before the map (Bansal et al.'s BN-conv-BN) */
  bnBefore: boolean;
  /** BatchNorm on the stitch output */
  bnAfter: boolean;
}

export interface PlanOptions {
  /** into a flat receiver from a spatial sender: 'pool' (default) or 'flatten' */
  flat?: 'pool' | 'flatten';
  /** force a kind (checked against the shapes) */
  kind?: StitchKind;
  bnBefore?: boolean;
  bnAfter?: boolean;
}

/**
 * @example planStitch([32, 28, 28], [64, 14, 14]) // { kind: 'downsample', ratio: 2, ... }
 */
export function planStitch(from: readonly number[], to: readonly number[], opts: PlanOptions = {}): StitchSpec {
  const base = { from: [...from], to: [...to], bnBefore: !!opts.bnBefore, bnAfter: !!opts.bnAfter };
  const desc = `${fmt(from)} -> ${fmt(to)}`;
  let spec: StitchSpec;
  if (to.length === 1) {
    if (from.length === 1) spec = { ...base, kind: 'linear', ratio: 1 };
    else if (from.length === 3) spec = { ...base, kind: (opts.flat ?? 'pool') === 'pool' ? 'pool-linear' : 'flatten-linear', ratio: 1 };
    else throw new UserError(`cannot stitch ${desc}: the sender must be an image tensor [C,H,W] or a flat vector`);
  } else if (to.length === 3) {
    if (from.length !== 3) throw new UserError(`cannot stitch ${desc}: a flat sender vector cannot feed a spatial receiver tensor; choose a later receiver cut or an earlier sender cut`);
    spec = { ...base, ...spatialKind(from as number[], to as number[], desc) };
  } else {
    throw new UserError(`cannot stitch ${desc}: the receiver must be an image tensor [C,H,W] or a flat vector`);
  }
  if (opts.kind && opts.kind !== spec.kind) {
    const ok = (opts.kind === 'flatten-linear' && spec.kind === 'pool-linear') || (opts.kind === 'pool-linear' && spec.kind === 'flatten-linear');
    if (!ok) throw new UserError(`stitch kind "${opts.kind}" does not fit ${desc}; these shapes take a ${spec.kind} stitch`);
    spec.kind = opts.kind;
  }
  return spec;
}

function spatialKind(from: number[], to: number[], desc: string): { kind: StitchKind; ratio: number } {
  const [, ha, wa] = from as [number, number, number];
  const [, hb, wb] = to as [number, number, number];
  if (ha === hb && wa === wb) return { kind: 'conv1x1', ratio: 1 };
  if (ha >= hb && wa >= wb) {
    const r = powerOfTwo((k) => Math.ceil(ha / k) === hb && Math.ceil(wa / k) === wb, Math.max(ha, wa));
    if (r) return { kind: 'downsample', ratio: r };
  } else if (ha <= hb && wa <= wb) {
    const r = powerOfTwo((k) => Math.ceil(hb / k) === ha && Math.ceil(wb / k) === wa, Math.max(hb, wb));
    if (r) return { kind: 'upsample', ratio: r };
  }
  throw new UserError(`cannot stitch ${desc}: the spatial sizes ${ha}x${wa} and ${hb}x${wb} differ by no power-of-2 factor r (the smaller must be ceil(larger / r), r = 2, 4, 8, ...)`);
}

function powerOfTwo(fits: (r: number) => boolean, limit: number): number | undefined {
  for (let r = 2; r <= 2 * limit; r *= 2) if (fits(r)) return r;
  return undefined;
}

/** Zero padding at the bottom/right that a stride-r convolution needs to produce `out` from `size`. */
export const padFor = (size: number, out: number, r: number): number => out * r - size;

export const fmt = (s: readonly number[]): string => `[${s.join('x')}]`;

/** A short stable key of a spec (sessions for equal specs are shared). */
export function specKey(s: StitchSpec): string {
  return `${s.kind}:${s.from.join('x')}->${s.to.join('x')}:r${s.ratio}${s.bnBefore ? ':bnb' : ''}${s.bnAfter ? ':bna' : ''}`;
}
