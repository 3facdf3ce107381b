/**
 * Masks by backward propagation from the logit (docs/lego-method.md §3). For each task class c,
 * start from onehot(c) over the logits and walk the layers from the output back in
 * data-flow order; each layer turns the mask over its outputs into one over its inputs:
 *
 *   N[o,i] = minmax over i of V[c,o,i];  A = N > alpha;  S[i] = sum_o m[o] A[o,i];
 *   input mask = minmax(S) > beta
 *
 * Demands land on channel spaces (channels.ts), so every consumer of a tensor, every
 * member of a residual Add group and every Concat part sees the union. A residual group
 * has several producers, so the walk repeats until no mask grows (a fixed point; masks
 * only grow, so it ends). The task mask is the union over the task's classes.
 *
 * @example
 *   const { masks, keep } = computeMasks(cg, contributions, { task: [0, 1], outputs: [0, 1], thresholds: DEFAULT_THRESHOLDS });
 */
import type { ChannelGraph, ChannelRef, Layer, SpaceMasks } from './channels.js';
import { closeKeep, demand, demandUntracked, findSpace, indicesOf, maskOf } from './channels.js';
import type { LayerContributions } from './contributions.js';
import type { LayerMask, Masks, Thresholds } from './types.js';
import type { TaskOutputs } from './task.js';

export interface MaskInput {
  /** the task's classes and the model output of each */
  task: TaskOutputs;
  thresholds: Thresholds;
  /** representative samples used per class, for the record */
  samples?: Record<string, number>;
  /** per task class (dataset class id): thresholds replacing `thresholds` for that class (a relaxed class) */
  classThresholds?: ReadonlyMap<number, Thresholds>;
  /** how a classifier's mask crosses a Flatten of a spatial map (default 'prune'; see FlattenMode) */
  flatten?: FlattenMode;
}

/**
 * How a mask crosses a Flatten of a spatial map (feature blocks of more than one value per
 * channel). 'prune': a channel is kept when any of its features is (docs/lego-method.md §3).
 * 'keep': the official code's behaviour, which resets its mask to all-ones where shapes
 * disagree: every channel feeding the Flatten is kept, and layers before it are masked from
 * there. A Flatten of 1x1 maps (after global pooling) is a plain channel map either way.
 */
export const FLATTEN_MODES = ['prune', 'keep'] as const;
export type FlattenMode = (typeof FLATTEN_MODES)[number];

/** A layer's input demand as the Flatten mode lets it cross to the producers. */
function crossing(ref: ChannelRef, mask: Uint8Array, flatten: FlattenMode): Uint8Array {
  return flatten === 'keep' && ref.kind === 'flatten' && ref.block > 1 ? new Uint8Array(mask.length).fill(1) : mask;
}

export interface MaskResult {
  masks: Masks;
  /** kept channels per space representative: the task mask, with fixed spaces whole */
  keep: SpaceMasks;
  /** output indices the component keeps, ascending */
  keptOutputs: number[];
  warnings: string[];
}

const EPS = 1e-5;

/**
 * One layer's input mask for one class. `v` is [O, groupIn]; `out` the mask over outputs.
 * Returns the mask over the layer's inChannels and whether a rescue was needed (no input
 * passed the thresholds although some output is kept: the strongest input is kept).
 */
export function layerInputMask(layer: Layer, v: Float64Array, out: Uint8Array, alpha: number, beta: number): { mask: Uint8Array; rescued: boolean } {
  const o = layer.outChannels;
  const gi = layer.groupIn;
  const groups = layer.conv?.groups ?? 1;
  const og = o / groups;
  const mask = new Uint8Array(layer.inChannels);
  if (!out.some((x) => x)) return { mask, rescued: false };
  if (gi === 1 && groups > 1) {
    // one input per group (depthwise): min-max over a single input is always 0, so the
    // input of a group is kept exactly when one of its outputs is
    for (let oc = 0; oc < o; oc++) if (out[oc]) mask[Math.floor(oc / og)] = 1;
    return { mask, rescued: false };
  }
  const s = new Float64Array(layer.inChannels);
  const strength = new Float64Array(layer.inChannels);
  for (let oc = 0; oc < o; oc++) {
    if (!out[oc]) continue;
    const base = Math.floor(oc / og) * gi;
    const row = oc * gi;
    let min = Infinity;
    let max = -Infinity;
    for (let i = 0; i < gi; i++) {
      const x = v[row + i]!;
      if (x < min) min = x;
      if (x > max) max = x;
    }
    const den = max - min + EPS;
    for (let i = 0; i < gi; i++) {
      const x = v[row + i]!;
      strength[base + i]! += x;
      if ((x - min) / den > alpha) s[base + i]! += 1;
    }
  }
  let min = Infinity;
  let max = -Infinity;
  for (const x of s) {
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const den = max - min + EPS;
  let any = false;
  for (let i = 0; i < s.length; i++)
    if ((s[i]! - min) / den > beta) {
      mask[i] = 1;
      any = true;
    }
  if (any) return { mask, rescued: false };
  let best = 0;
  for (let i = 1; i < strength.length; i++) if (strength[i]! > strength[best]!) best = i;
  mask[best] = 1;
  return { mask, rescued: true };
}

export function computeMasks(cg: ChannelGraph, contributions: Map<string, LayerContributions>, input: MaskInput): MaskResult {
  const { thresholds } = input;
  const layers = [...contributions.values()].map((c) => c.layer);
  const reverse = [...layers].reverse();
  const logitsRef = cg.refs.get(cg.logits)!;
  const logitsSize = maskOf(cg, logitsRef, new Map()).length;
  const keep: SpaceMasks = new Map();
  const warnings: string[] = [];
  const perClass = new Map<string, Record<string, { in: number[]; out: number[] }>>(layers.map((l) => [l.node.name, {}]));
  const rescuedAt = new Map<string, number[]>();
  input.task.classes.forEach((c, ci) => {
    const t = input.classThresholds?.get(c) ?? thresholds;
    const masks: SpaceMasks = new Map();
    const start = new Uint8Array(logitsSize);
    start[input.task.outputs[ci]!] = 1;
    demand(cg, logitsRef, start, masks);
    for (let changed = true; changed;) {
      changed = false;
      for (const layer of reverse) {
        const out = maskOf(cg, cg.refs.get(layer.output)!, masks);
        const alpha = layer.kind === 'conv' ? t.alphaConv : t.alphaLinear;
        const beta = layer.kind === 'conv' ? t.betaConv : t.betaLinear;
        const v = contributions.get(layer.node.name)!.values[ci]!;
        const { mask, rescued } = layerInputMask(layer, v, out, alpha, beta);
        if (rescued) {
          const list = rescuedAt.get(layer.node.name) ?? [];
          if (!list.includes(c)) rescuedAt.set(layer.node.name, [...list, c]);
        }
        const inRef = cg.refs.get(layer.input)!;
        if (demand(cg, inRef, crossing(inRef, mask, input.flatten ?? 'prune'), masks)) changed = true;
      }
      if (demandUntracked(cg, masks)) changed = true;
    }
    for (const layer of layers) {
      perClass.get(layer.node.name)![String(c)] = {
        in: indicesOf(maskOf(cg, cg.refs.get(layer.input)!, masks)),
        out: indicesOf(maskOf(cg, cg.refs.get(layer.output)!, masks)),
      };
    }
    for (const [id, m] of masks) demand(cg, { kind: 'space', id }, m, keep);
  });
  for (const [layer, classes] of rescuedAt) {
    warnings.push(
      `layer ${layer}: no input channel passed the thresholds for class${classes.length > 1 ? 'es' : ''} ${classes.join(',')}; kept the channel with the highest contribution`,
    );
  }
  // The logits keep exactly the task's rows; other spaces never demanded keep their
  // strongest channel so that no layer is left empty.
  const keptOutputs = [...input.task.outputs].sort((a, b) => a - b);
  if (logitsRef.kind === 'space') {
    const m = new Uint8Array(logitsSize);
    for (const o of keptOutputs) m[o] = 1;
    keep.set(findSpace(cg, logitsRef.id), m);
  }
  cg.spaces.forEach((space, id) => {
    if (findSpace(cg, id) !== id) return;
    if (space.fixed) {
      keep.set(id, new Uint8Array(space.size).fill(1));
      return;
    }
    const m = keep.get(id);
    if (m && m.some((x) => x)) return;
    const producer = cg.layers.find((l) => {
      const r = cg.refs.get(l.output)!;
      return r.kind === 'space' && findSpace(cg, r.id) === id;
    });
    const best = producer ? strongestOutput(producer, contributions) : 0;
    const fresh = new Uint8Array(space.size);
    fresh[best] = 1;
    keep.set(id, fresh);
    if (producer) warnings.push(`tensor ${space.tensor}: no channel is needed by the task; kept channel ${best} so that ${producer.node.name} is not empty`);
  });
  // grouped convolutions keep or drop whole groups
  closeKeep(cg, keep);
  const layerMasks: LayerMask[] = layers.map((l) => ({
    node: l.node.name,
    op: l.node.opType,
    input: l.input,
    output: l.output,
    inChannels: l.inChannels,
    outChannels: l.outChannels,
    perClass: perClass.get(l.node.name)!,
    task: { in: indicesOf(maskOf(cg, cg.refs.get(l.input)!, keep)), out: indicesOf(maskOf(cg, cg.refs.get(l.output)!, keep)) },
  }));
  return {
    masks: {
      task: [...input.task.classes],
      thresholds: { ...thresholds },
      samples: input.samples ?? {},
      flatten: input.flatten ?? 'prune',
      ...(input.classThresholds?.size ? { classThresholds: Object.fromEntries([...input.classThresholds].map(([c, t]) => [String(c), { ...t }])) } : {}),
      layers: layerMasks,
    },
    keep,
    keptOutputs,
    warnings,
  };
}

/** The output channel of a layer with the largest total contribution from its inputs (over all task classes). */
function strongestOutput(layer: Layer, contributions: Map<string, LayerContributions>): number {
  const c = contributions.get(layer.node.name);
  if (!c) return 0;
  let best = 0;
  let bestValue = -Infinity;
  for (let o = 0; o < layer.outChannels; o++) {
    let s = 0;
    for (const v of c.values) for (let i = 0; i < layer.groupIn; i++) s += v[o * layer.groupIn + i]!;
    if (s > bestValue) {
      bestValue = s;
      best = o;
    }
  }
  return best;
}
