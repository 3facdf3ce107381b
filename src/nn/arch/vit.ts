/**
 * Vision Transformer (Dosovitskiy et al. 2021) as torchvision's VisionTransformer builds
 * it: a Conv patch embedding (kernel = stride = patch), a class token, a learned position
 * embedding, pre-LayerNorm encoder blocks (multi-head self-attention and a GELU MLP, each
 * with a residual connection), a final LayerNorm and a Linear head on the class token.
 *
 * Parameter names and shapes are torchvision's state_dict (`conv_proj.weight`,
 * `class_token`, `encoder.pos_embedding`, `encoder.layers.encoder_layer_0.ln_1.weight`,
 * `...self_attention.in_proj_weight` [3D, D], `...self_attention.out_proj.weight`,
 * `...mlp.0.weight`, `...mlp.3.weight`, `encoder.ln.weight`, `heads.head.weight`), so a
 * torchvision ViT's weights load unchanged and the logits can be checked against
 * PyTorch. The attention keeps torch's fused q/k/v projection (one in_proj matrix, split
 * after the product) rather than separate query/key/value layers: that is torchvision's
 * layout, and a LoRA adapter on it is one low-rank update of the whole projection.
 *
 * Initialisation follows torchvision: conv_proj truncated normal with std sqrt(1/fan_in),
 * class token zero, position embedding N(0, 0.02^2), in_proj and MLP weights Xavier
 * uniform, MLP biases N(0, 1e-6^2), out_proj nn.Linear's default. The head takes
 * nn.Linear's default instead of torchvision's zeros: the zoo trains from scratch, and a
 * zero head gives the encoder no gradient on the first step.
 */
import type { CutPoint } from '../../onnx/metadata.js';
import type { GraphBuilder, TensorHandle } from '../builder.js';
import { UserError } from '../../util/errors.js';
import { type Arch, type ArchContext, cut } from './common.js';

/** The structure of a ViT (before width scaling). */
export interface VitShape {
  patch: number;
  layers: number;
  /** embedding (hidden) size D, a multiple of heads */
  hidden: number;
  heads: number;
  /** MLP hidden size */
  mlp: number;
}

/** The small ViT of issue 12 (torchvision VisionTransformer(patch 4, 4 layers, 4 heads, hidden 128, mlp 512)). */
export const VIT_DEFAULTS: Readonly<VitShape> = { patch: 4, layers: 4, hidden: 128, heads: 4, mlp: 512 };

/**
 * The ViT sizes a caller gave, the others from `defaults`. `hidden` comes as the list the
 * zoo options share with the MLP's layer sizes; its first entry is the embedding size
 * (callers check that there is exactly one). Values are not validated here.
 */
export function vitShapeOf(given: Partial<Omit<VitShape, 'hidden'>> & { hidden?: readonly number[] | undefined }, defaults: Readonly<VitShape>): VitShape {
  return {
    patch: given.patch ?? defaults.patch,
    layers: given.layers ?? defaults.layers,
    hidden: given.hidden?.[0] ?? defaults.hidden,
    heads: given.heads ?? defaults.heads,
    mlp: given.mlp ?? defaults.mlp,
  };
}

/**
 * The hidden and MLP sizes after the width multiplier; the hidden size is rounded to a
 * multiple of the head count so every head keeps the same size.
 */
export function scaledVitShape(s: VitShape, ch: (n: number) => number): VitShape {
  const perHead = Math.max(1, Math.round(ch(s.hidden) / s.heads));
  return { ...s, hidden: perHead * s.heads, mlp: ch(s.mlp) };
}

/** torchvision's formula: sum(p.numel() for p in VisionTransformer(...).parameters()). */
export function vitParameterCount(s: VitShape, input: readonly [number, number, number], classes: number): number {
  const [c, h, w] = input;
  const d = s.hidden,
    m = s.mlp;
  const tokens = (h / s.patch) * (w / s.patch) + 1;
  const perLayer = 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (d * m + m) + (m * d + d);
  return d * c * s.patch * s.patch + d + d + tokens * d + s.layers * perLayer + 2 * d + d * classes + classes;
}

function encoderBlock(b: GraphBuilder, x: TensorHandle, s: VitShape, name: string): TensorHandle {
  const d = s.hidden;
  const h = b.layerNorm(x, `${name}.ln_1`);
  const a = selfAttention(b, h, s, `${name}.self_attention`);
  const res = b.add(a, x, `${name}.add_1`);
  const y = b.layerNorm(res, `${name}.ln_2`);
  const hidden = b.tokenLinear(y, s.mlp, `${name}.mlp.0`, { weightInit: xavier(d, s.mlp), biasInit: { kind: 'normal', std: 1e-6 } });
  const act = b.gelu(hidden, `${name}.mlp.1`);
  const z = b.tokenLinear(act, d, `${name}.mlp.3`, { weightInit: xavier(s.mlp, d), biasInit: { kind: 'normal', std: 1e-6 } });
  return b.add(res, z, name);
}

const xavier = (fanIn: number, fanOut: number) => ({ kind: 'xavierUniform', fanIn, fanOut }) as const;

/**
 * torch.nn.MultiheadAttention (batch_first, no mask): q, k, v from one in_proj, split
 * into heads, softmax(q k^T / sqrt(head size)) v, heads joined, out_proj.
 */
function selfAttention(b: GraphBuilder, x: TensorHandle, s: VitShape, name: string): TensorHandle {
  const [t, d] = x.shape as [number, number];
  const dh = d / s.heads;
  const qkv = b.tokenLinear(x, 3 * d, `${name}.in_proj`, {
    weight: `${name}.in_proj_weight`,
    bias: `${name}.in_proj_bias`,
    weightInit: xavier(d, 3 * d),
    biasInit: { kind: 'constant', value: 0 },
  });
  const [q, k, v] = b.split(qkv, -1, [d, d, d], [`${name}.q`, `${name}.k`, `${name}.v`]) as [TensorHandle, TensorHandle, TensorHandle];
  const heads = (u: TensorHandle, perm: number[], tag: string): TensorHandle =>
    b.transpose(b.reshape(u, [t, s.heads, dh], `${name}.${tag}_heads`), perm, `${name}.${tag}_t`);
  const qh = b.scale(heads(q, [1, 0, 2], 'q'), 1 / Math.sqrt(dh), `${name}.q_scaled`); // [H, T, dh]
  const kh = heads(k, [1, 2, 0], 'k'); // [H, dh, T]
  const vh = heads(v, [1, 0, 2], 'v'); // [H, T, dh]
  const weights = b.softmax(b.matmul(qh, kh, `${name}.scores`), -1, `${name}.softmax`);
  const joined = b.reshape(b.transpose(b.matmul(weights, vh, `${name}.context`), [1, 0, 2], `${name}.context_t`), [t, d], `${name}.context_joined`);
  return b.tokenLinear(joined, d, `${name}.out_proj`, { biasInit: { kind: 'constant', value: 0 } });
}

export const vit: Arch = ({ b, x, classes, ch, vit: shape }: ArchContext) => {
  const s = scaledVitShape(shape ?? VIT_DEFAULTS, ch);
  const [c, h, w] = x.shape as [number, number, number];
  if (h % s.patch !== 0 || w % s.patch !== 0)
    throw new UserError(`vit: input ${h}x${w} is not divisible into ${s.patch}x${s.patch} patches; choose a patch size that divides both`);
  const fanIn = c * s.patch * s.patch;
  const patches = b.conv(x, { out: s.hidden, kernel: s.patch, stride: s.patch, weightInit: { kind: 'truncNormal', std: Math.sqrt(1 / fanIn) } }, 'conv_proj');
  const n = (h / s.patch) * (w / s.patch);
  const tokens = b.transpose(b.reshape(patches, [s.hidden, n], 'patches'), [1, 0], 'tokens');
  const withClass = b.prependToken(tokens, 'class_token', { kind: 'constant', value: 0 }, 'class_token_prepended');
  let e = b.addParameter(withClass, 'encoder.pos_embedding', { kind: 'normal', std: 0.02 }, 'encoder.embedded');
  const cuts: CutPoint[] = [cut('embedding', e, 'stem')];
  for (let i = 0; i < s.layers; i++) {
    e = encoderBlock(b, e, s, `encoder.layers.encoder_layer_${i}`);
    cuts.push(cut(`encoder_layer_${i}`, e, 'block'));
  }
  const normed = b.layerNorm(e, 'encoder.ln');
  const features = b.select(normed, 0, 0, 'class_token_features');
  cuts.push(cut('features', features, 'features'));
  return { logits: b.linear(features, classes, 'heads.head', { init: 'uniform' }), cuts };
};
