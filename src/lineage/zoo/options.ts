/**
 * What a lineage zoo is made of: the options of `makeLineageZoo`, their defaults and
 * their validation. Everything that changes a zoo's content is in `ZooSettings` so a
 * resumed run can refuse to mix models made under different settings.
 */
import { OptionError } from '../../util/errors.js';
import { type VitShape, vitShapeOf } from '../../nn/arch/vit.js';

export type VariantKind = 'fp16' | 'int8' | 'pruned';
export const VARIANT_KINDS: readonly VariantKind[] = ['fp16', 'int8', 'pruned'];

export interface LineageZooOptions {
  /** dataset spec (its train split trains, its test split scores) */
  data: string;
  outDir: string;
  /** independent trees (each rooted at a freshly trained model); default 3 */
  trees?: number;
  /** children per node; default 4 */
  children?: number;
  /** levels below the root; default 2 (1 + 4 + 16 models per tree with 4 children) */
  depth?: number;
  /** LoRA ranks to draw from per fine-tuned model; absent = full fine-tuning */
  lowrank?: number[];
  /** zoo architecture; default 'mlp' */
  arch?: string;
  /** MLP hidden sizes (default 128,128,128: two square 128x128 weights); for arch vit the one embedding size (default 64) */
  hidden?: number[];
  /** ViT structure (arch vit only); defaults LINEAGE_VIT */
  patch?: number;
  layers?: number;
  heads?: number;
  mlp?: number;
  /** zoo width multiplier (non-MLP architectures); default 1 */
  width?: number;
  seed?: number;
  /** optimiser steps for a root; default 600 */
  rootSteps?: number;
  /** optimiser steps for a fine-tuned model; default 300 */
  steps?: number;
  /** default 128 */
  batchSize?: number;
  /** robustness copies written next to the zoo as `<outDir>-<kind>` */
  variants?: VariantKind[];
  /** fraction of each weight matrix zeroed by the pruned variant; default 0.2 */
  pruneFraction?: number;
  /** also write `<outDir>/onnx/<name>.onnx` for each model (kept out of the zoo's top level) */
  onnx?: boolean;
  /** also write the zoo as Hugging Face model folders with model cards in `<outDir>-hf` */
  hf?: boolean;
  /** Hugging Face folders: shard weights larger than this many bytes (default: one file) */
  hfShardBytes?: number;
  /** ONNX Runtime options */
  threads?: number;
  provider?: string;
}

/** The settings that determine every model's bytes (recorded in zoo.json, checked on resume). */
export interface ZooSettings {
  data: string;
  trees: number;
  children: number;
  depth: number;
  lowrank: number[] | null;
  arch: string;
  hidden: number[] | null;
  /** the ViT's structure (arch vit), null otherwise */
  vit: VitShape | null;
  width: number;
  seed: number;
  rootSteps: number;
  steps: number;
  batchSize: number;
  /** SGD with momentum 0.9, cosine decay over each model's steps */
  rootLr: number;
  /** log-uniform range a full fine-tune's learning rate is drawn from */
  fineTuneLr: [number, number];
  /** log-uniform range a LoRA fine-tune's learning rate is drawn from */
  loraLr: [number, number];
  /** weight decay on roots' weight matrices (fine-tunes use none, as HF Trainer's default) */
  rootWeightDecay: number;
}

/**
 * The ViT a lineage zoo trains by default: torchvision's VisionTransformer with 7x7
 * patches on 28x28 images (16 tokens + the class token), 2 layers, hidden 64, 4 heads,
 * MLP 256 (the usual 4x). Small enough that a 63-model zoo trains in minutes on two
 * shared cores; the structure, and so the selected weights (in_proj [192x64], out_proj
 * [64x64], mlp.0 [256x64], mlp.3 [64x256] per layer), are those of the paper's ViTs.
 */
export const LINEAGE_VIT: Readonly<VitShape> = { patch: 7, layers: 2, hidden: 64, heads: 4, mlp: 256 };

/** Zoos larger than this are almost surely a typo (4 children, depth 6 is 5,461 per tree). */
const MAX_MODELS = 5000;

export function zooSettings(o: LineageZooOptions): ZooSettings {
  const trees = positiveInt('trees', o.trees ?? 3);
  const children = positiveInt('children', o.children ?? 4);
  const depth = o.depth ?? 2;
  if (!Number.isInteger(depth) || depth < 0)
    throw new OptionError((o) => `${o('depth')} expects a non-negative integer (levels below each root), got ${depth}`);
  const perTree = treeSize(children, depth);
  if (trees * perTree > MAX_MODELS) {
    throw new OptionError(
      (o) => `${o('trees', trees)} ${o('children', children)} ${o('depth', depth)} makes ${trees * perTree} models; at most ${MAX_MODELS} are allowed`,
    );
  }
  const seed = o.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new OptionError((o) => `${o('seed')} expects an integer in 0..4294967295, got ${seed}`);
  const arch = o.arch ?? 'mlp';
  const vit = vitSettings(arch, o);
  const hidden = vit ? undefined : (o.hidden ?? (arch === 'mlp' ? [128, 128, 128] : undefined));
  if (hidden && (hidden.length === 0 || !hidden.every((h) => Number.isInteger(h) && h > 0))) {
    throw new OptionError((o) => `${o('hidden')} expects positive integer layer sizes such as 128,128,128, got "${hidden.join(',')}"`);
  }
  const width = o.width ?? 1;
  if (!(Number.isFinite(width) && width > 0)) throw new OptionError((o) => `${o('width')} expects a positive number, got ${width}`);
  if (o.data.trim() === '') throw new OptionError((o) => `${o('data')} is empty: expected a dataset spec such as fashion-mnist`);
  return {
    data: o.data,
    trees,
    children,
    depth,
    lowrank: o.lowrank ? checkRanks(o.lowrank) : null,
    arch,
    hidden: hidden ? [...hidden] : null,
    vit,
    width,
    seed,
    rootSteps: positiveInt('rootSteps', o.rootSteps ?? 600),
    steps: positiveInt('steps', o.steps ?? 300),
    batchSize: positiveInt('batchSize', o.batchSize ?? 128),
    rootLr: 0.05,
    fineTuneLr: [0.005, 0.05],
    loraLr: [0.01, 0.05],
    rootWeightDecay: 5e-4,
  };
}

/** The ViT structure of a vit zoo (options over LINEAGE_VIT); ViT options for another arch are refused. */
function vitSettings(arch: string, o: LineageZooOptions): VitShape | null {
  const given = { patch: o.patch, layers: o.layers, heads: o.heads, mlp: o.mlp };
  if (arch !== 'vit') {
    const key = Object.entries(given).find(([, v]) => v !== undefined)?.[0];
    if (key) throw new OptionError((o) => `${o(key)} applies only to ${o('arch', 'vit')}`);
    return null;
  }
  if (o.hidden !== undefined && o.hidden.length !== 1) {
    const got = o.hidden.join(',');
    throw new OptionError((n) => `${n('hidden')} for ${n('arch', 'vit')} is the one embedding size (e.g. 64), got "${got}"`);
  }
  const s = vitShapeOf(o, LINEAGE_VIT);
  for (const [k, v] of Object.entries(s)) positiveInt(k, v);
  return s;
}

/** Models in one tree: 1 + C + C^2 + ... + C^D. */
export function treeSize(children: number, depth: number): number {
  let n = 0;
  for (let d = 0, level = 1; d <= depth; d++, level *= children) n += level;
  return n;
}

export function checkRanks(ranks: readonly number[]): number[] {
  if (!ranks.length || !ranks.every((r) => Number.isInteger(r) && r > 0)) {
    throw new OptionError((o) => `${o('lowrank')} expects a comma-separated list of positive integer ranks such as 4,8, got "${ranks.join(',')}"`);
  }
  return [...ranks];
}

/** Parses "4,8" (the CLI's --lowrank) into ranks, refusing anything else. */
export function parseRanks(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (!parts.every((p) => /^\d+$/.test(p))) {
    throw new OptionError((o) => `${o('lowrank')} expects a comma-separated list of positive integer ranks such as 4,8, got "${text}"`);
  }
  return checkRanks(parts.map(Number));
}

export function parseVariants(text: string): VariantKind[] {
  const parts = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const p of parts) {
    if (!(VARIANT_KINDS as readonly string[]).includes(p))
      throw new OptionError((o) => `${o('variants')} expects a list of ${VARIANT_KINDS.join(', ')}, got "${p}"`);
  }
  if (!parts.length) throw new OptionError((o) => `${o('variants')} expects a list of ${VARIANT_KINDS.join(', ')}, got "${text}"`);
  return [...new Set(parts)] as VariantKind[];
}

export function checkPruneFraction(f: number): number {
  if (!(Number.isFinite(f) && f > 0 && f < 1)) throw new OptionError((o) => `${o('pruneFraction')} expects a number in (0, 1), got ${f}`);
  return f;
}

function positiveInt(option: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new OptionError((o) => `${o(option)} expects a positive integer, got ${v}`);
  return v;
}
