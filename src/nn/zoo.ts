/**
 * The model zoo: named architectures, each created for any input shape, class count,
 * width multiplier and seed, and written with the metadata the rest of modelsmith reads
 * (architecture, input shape, cut points, provenance).
 */
import type { Model } from '../onnx/types.js';
import { setArch, setCuts, setInputSpec, setProvenance } from '../onnx/metadata.js';
import { UserError } from '../util/errors.js';
import { GraphBuilder } from './builder.js';
import { type Arch, scaleWidth } from './arch/common.js';
import { mlp } from './arch/mlp.js';
import { lenet5 } from './arch/lenet.js';
import { VGG_CFG, vgg } from './arch/vgg.js';
import { resnet, resnet18, resnet34, resnet50 } from './arch/resnet.js';
import { inception } from './arch/inception.js';
import { VIT_DEFAULTS, type VitShape, vit, vitShapeOf } from './arch/vit.js';

export interface ZooOptions {
  /** [C, H, W]; default [1, 28, 28] */
  input?: readonly [number, number, number] | readonly number[];
  /** default 10 */
  classes?: number;
  /** channel / hidden-unit multiplier; default 1 */
  width?: number;
  /** default 0 */
  seed?: number;
  /** ResNet stage block counts (arch `resnet` only); default [2, 2, 2, 2] */
  blocks?: readonly number[];
  /** MLP hidden layer sizes (arch `mlp`; default [256, 128]); the ViT's one hidden (embedding) size (arch `vit`; default [128]) */
  hidden?: readonly number[];
  /** ViT patch size (default 4); must divide the input's height and width */
  patch?: number;
  /** ViT encoder layers (default 4) */
  layers?: number;
  /** ViT attention heads (default 4); must divide the hidden size */
  heads?: number;
  /** ViT MLP hidden size (default 512) */
  mlp?: number;
}

/** The structure options beyond input, classes, width and seed. */
export type StructureOption = 'blocks' | 'hidden' | 'patch' | 'layers' | 'heads' | 'mlp';

export interface ZooEntry {
  description: string;
  /** which of the optional structure options this architecture takes */
  takes: readonly StructureOption[];
  create(opts?: ZooOptions): Model;
}

const entry = (name: string, description: string, arch: Arch, takes: readonly StructureOption[] = []): ZooEntry => ({
  description,
  takes,
  create: (opts = {}) => buildZooModel(name, arch, opts),
});

export const ZOO: Readonly<Record<string, ZooEntry>> = {
  mlp: entry('mlp', 'multi-layer perceptron: flatten, hidden Linear+ReLU layers (default 256, 128), classifier', mlp, ['hidden']),
  lenet5: entry('lenet5', 'LeNet-5: two 5x5 conv + max-pool layers, three Linear layers', lenet5),
  vgg11: entry('vgg11', 'VGG-11 with BatchNorm, CIFAR-style global-pool + Linear head', vgg(VGG_CFG.vgg11)),
  vgg16: entry('vgg16', 'VGG-16 with BatchNorm, CIFAR-style global-pool + Linear head', vgg(VGG_CFG.vgg16)),
  resnet: entry('resnet', 'ResNet with basic blocks and any per-stage block counts (--blocks, default 2,2,2,2), CIFAR stem', resnet, ['blocks']),
  resnet18: entry('resnet18', 'ResNet-18: basic blocks [2,2,2,2], CIFAR stem', resnet18),
  resnet34: entry('resnet34', 'ResNet-34: basic blocks [3,4,6,3], CIFAR stem', resnet34),
  resnet50: entry('resnet50', 'ResNet-50: bottleneck blocks [3,4,6,3], CIFAR stem', resnet50),
  inception: entry('inception', 'GoogLeNet-style Inception net for small images (kuangliu CIFAR definition)', inception),
  vit: entry('vit', 'Vision Transformer as torchvision builds it (--patch 4 --layers 4 --hidden 128 --heads 4 --mlp 512 by default), class-token head', vit, [
    'hidden',
    'patch',
    'layers',
    'heads',
    'mlp',
  ]),
};

export const ZOO_NAMES: readonly string[] = Object.keys(ZOO);

/**
 * A freshly initialised model of the zoo (`ZOO_NAMES`), seeded.
 *
 * @example
 *   const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.25, input: [1, 28, 28], seed: 1 });
 */
export function createZooModel(arch: string, opts: ZooOptions = {}): Model {
  const e = Object.hasOwn(ZOO, arch) ? ZOO[arch] : undefined;
  if (!e) throw new UserError(`unknown architecture "${arch}"; known: ${ZOO_NAMES.join(', ')}`);
  return e.create(opts);
}

/** Fixed block counts of the named ResNets, recorded in their metadata. */
const FIXED_BLOCKS: Record<string, number[]> = { resnet18: [2, 2, 2, 2], resnet34: [3, 4, 6, 3], resnet50: [3, 4, 6, 3] };

function buildZooModel(name: string, arch: Arch, opts: ZooOptions): Model {
  const o = validate(name, opts);
  const b = new GraphBuilder({ seed: o.seed, graphName: name });
  const x = b.input('input', o.input);
  const result = arch({
    b,
    x,
    classes: o.classes,
    ch: scaleWidth(o.width),
    ...(o.blocks ? { blocks: o.blocks } : {}),
    ...(o.hidden && name !== 'vit' ? { hidden: o.hidden } : {}),
    ...(o.vit ? { vit: o.vit } : {}),
  });
  const logits = b.output(result.logits, 'logits');
  const model = b.build();
  const blocks = o.blocks ?? FIXED_BLOCKS[name] ?? (name === 'resnet' ? [2, 2, 2, 2] : undefined);
  setArch(model, {
    name,
    ...(blocks ? { blocks } : {}),
    ...(o.hidden && !o.vit ? { hidden: o.hidden } : {}),
    ...(o.vit ?? {}),
    width: o.width,
    input: o.input,
    classes: o.classes,
    seed: o.seed,
  });
  setInputSpec(model, { shape: o.input });
  setCuts(model, [...result.cuts, { name: 'logits', tensor: logits.name, kind: 'logits' }]);
  setProvenance(model, { operation: 'created', parents: [], seed: o.seed });
  return model;
}

interface Validated {
  input: [number, number, number];
  classes: number;
  width: number;
  seed: number;
  blocks?: number[];
  hidden?: number[];
  vit?: VitShape;
}

function validate(arch: string, opts: ZooOptions): Validated {
  const input = [...(opts.input ?? [1, 28, 28])];
  if (input.length !== 3 || !input.every(isPositiveInt)) {
    throw new UserError(`${arch}: input shape must be three positive integers C,H,W (e.g. 1,28,28 or 3,32,32), got ${input.join(',')}`);
  }
  const classes = opts.classes ?? 10;
  if (!isPositiveInt(classes)) throw new UserError(`${arch}: classes must be a positive integer, got ${classes}`);
  const width = opts.width ?? 1;
  if (!(Number.isFinite(width) && width > 0)) throw new UserError(`${arch}: width must be a positive number (e.g. 0.5, 1, 2), got ${width}`);
  const seed = opts.seed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new UserError(`${arch}: seed must be an integer in 0..4294967295, got ${seed}`);
  const takes = ZOO[arch]?.takes ?? [];
  const v: Validated = { input: input as [number, number, number], classes, width, seed };
  for (const k of ['blocks', 'hidden', 'patch', 'layers', 'heads', 'mlp'] as const) {
    if (opts[k] !== undefined && !takes.includes(k)) {
      const by = ZOO_NAMES.filter((a) => ZOO[a]!.takes.includes(k));
      throw new UserError(`${arch}: option ${k} applies only to arch ${by.join(', ')}`);
    }
  }
  if (arch === 'vit') {
    v.vit = validateVit(opts, v.input);
    return v;
  }
  if (opts.blocks !== undefined) {
    if (opts.blocks.length !== 4 || !opts.blocks.every(isPositiveInt)) {
      throw new UserError(`${arch}: blocks must be four positive integers, one per stage (e.g. 2,2,2,2), got ${opts.blocks.join(',') || '(none)'}`);
    }
    v.blocks = [...opts.blocks];
  }
  if (opts.hidden !== undefined) {
    if (!opts.hidden.every(isPositiveInt)) throw new UserError(`${arch}: hidden layer sizes must be positive integers, got ${String(opts.hidden)}`);
    v.hidden = [...opts.hidden];
  }
  return v;
}

function validateVit(opts: ZooOptions, input: readonly [number, number, number]): VitShape {
  if (opts.hidden !== undefined && opts.hidden.length !== 1) {
    throw new UserError(`vit: hidden is the one embedding size (e.g. 128), got ${opts.hidden.join(',') || '(none)'}`);
  }
  const s = vitShapeOf(opts, VIT_DEFAULTS);
  for (const [k, val] of Object.entries(s)) if (!isPositiveInt(val)) throw new UserError(`vit: ${k} must be a positive integer, got ${val}`);
  if (s.hidden % s.heads !== 0) throw new UserError(`vit: hidden size ${s.hidden} must be a multiple of heads (${s.heads})`);
  const [, h, w] = input;
  if (h % s.patch !== 0 || w % s.patch !== 0) {
    throw new UserError(`vit: input ${h}x${w} is not divisible into ${s.patch}x${s.patch} patches; choose a patch size that divides both`);
  }
  return s;
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}
