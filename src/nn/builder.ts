/**
 * Write an ONNX graph as code. Each call appends nodes to the graph and returns a handle
 * to the result with its static per-sample shape, so that layers can size themselves
 * from their input (as PyTorch's lazy modules do) and mistakes surface while building,
 * naming the layer, rather than later inside the runtime.
 *
 * Names follow PyTorch: parameters are `<layer>.weight`, `<layer>.bias`, and BatchNorm
 * adds `<layer>.running_mean` / `.running_var`, so a weights listing reads like a
 * state_dict. A node's name is also the name of the tensor it produces, so a user who
 * sees `layer1.0.relu2` in a listing can name it as a cut point.
 */
import type { Attribute, Dim, Graph, Model, Node, Tensor } from '../onnx/types.js';
import { createModel, emptyGraph, float, int, ints, str, freshName } from '../onnx/graph.js';
import { float32, int64, scalarInt64 } from '../onnx/tensor.js';
import { UserError } from '../util/errors.js';
import { type InitSpec, defaultUniformBound, initValues } from './init.js';

/** A tensor of the graph being built; `shape` excludes the batch dimension. */
export interface TensorHandle {
  readonly name: string;
  readonly shape: readonly number[];
}

/** The symbolic batch dimension of every tensor the builder writes. */
export const BATCH_DIM = 'N';

export interface ConvOptions {
  out: number;
  kernel: number;
  stride?: number;
  pad?: number;
  groups?: number;
  dilation?: number;
  /** PyTorch's default: true */
  bias?: boolean;
  /** the kernel's initialisation; default Kaiming normal (fan in) */
  weightInit?: InitSpec;
}

export interface PoolOptions {
  kernel: number;
  /** default: the kernel size, as in PyTorch */
  stride?: number;
  pad?: number;
  ceil?: boolean;
}

export interface AvgPoolOptions extends PoolOptions {
  /** PyTorch's default is true, ONNX's false; default here: false */
  countIncludePad?: boolean;
}

export interface LinearOptions {
  /** 'kaiming' for hidden layers (default); 'uniform' is PyTorch's nn.Linear default, used for classifiers */
  init?: 'kaiming' | 'uniform';
  bias?: boolean;
}

/** A Linear layer over the last axis of a token tensor [..., in] (a MatMul, not a Gemm). */
export interface TokenLinearOptions {
  /** parameter names; default `<name>.weight` and `<name>.bias` (torch's MultiheadAttention says `in_proj_weight`) */
  weight?: string;
  bias?: string;
  /** default PyTorch's nn.Linear: U(+-1/sqrt(in)) for both */
  weightInit?: InitSpec;
  biasInit?: InitSpec;
}

export interface BuilderOptions {
  seed?: number;
  graphName?: string;
}

export class GraphBuilder {
  readonly seed: number;
  private readonly graph: Graph;
  private readonly names = new Set<string>();

  constructor(opts: BuilderOptions = {}) {
    this.seed = opts.seed ?? 0;
    this.graph = emptyGraph(opts.graphName ?? 'model');
  }

  input(name: string, shape: readonly number[]): TensorHandle {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 1) throw new UserError(`input ${name}: shape [${shape.join(',')}] must hold positive integers`);
    }
    this.claim(name);
    this.graph.inputs.push({ name, dtype: 'float32', shape: [BATCH_DIM, ...shape] });
    return { name, shape: [...shape] };
  }

  conv(x: TensorHandle, o: ConvOptions, name: string): TensorHandle {
    this.checkFree(name);
    const [c, h, w] = spatial(x, name, 'conv');
    const stride = o.stride ?? 1,
      pad = o.pad ?? 0,
      groups = o.groups ?? 1,
      dilation = o.dilation ?? 1;
    positive(name, { out: o.out, kernel: o.kernel, stride, groups, dilation });
    if (!Number.isInteger(pad) || pad < 0) throw new UserError(`${name}: pad must be a non-negative integer, got ${pad}`);
    if (c % groups !== 0 || o.out % groups !== 0) {
      throw new UserError(`${name}: groups=${groups} must divide both input channels (${c}) and output channels (${o.out})`);
    }
    const span = dilation * (o.kernel - 1) + 1;
    const oh = Math.floor((h + 2 * pad - span) / stride) + 1;
    const ow = Math.floor((w + 2 * pad - span) / stride) + 1;
    if (oh < 1 || ow < 1) throw new UserError(`${name}: input ${h}x${w} is too small for a ${o.kernel}x${o.kernel} kernel (pad ${pad}, dilation ${dilation})`);
    const fanIn = (c / groups) * o.kernel * o.kernel;
    const inputs = [x.name, this.param(`${name}.weight`, [o.out, c / groups, o.kernel, o.kernel], o.weightInit ?? { kind: 'kaimingNormal', fanIn })];
    if (o.bias ?? true) inputs.push(this.param(`${name}.bias`, [o.out], { kind: 'constant', value: 0 }));
    return this.node('Conv', name, inputs, [o.out, oh, ow], {
      kernel_shape: ints([o.kernel, o.kernel]),
      strides: ints([stride, stride]),
      pads: ints([pad, pad, pad, pad]),
      dilations: ints([dilation, dilation]),
      group: int(groups),
    });
  }

  /** Inference-form BatchNormalization; momentum 0.9 in ONNX's convention is PyTorch's 0.1. */
  batchNorm(x: TensorHandle, name: string): TensorHandle {
    this.checkFree(name);
    if (x.shape.length < 1) throw new UserError(`${name}: batchNorm needs a tensor with a channel axis`);
    const c = x.shape[0]!;
    const inputs = [
      x.name,
      this.param(`${name}.weight`, [c], { kind: 'constant', value: 1 }),
      this.param(`${name}.bias`, [c], { kind: 'constant', value: 0 }),
      this.param(`${name}.running_mean`, [c], { kind: 'constant', value: 0 }),
      this.param(`${name}.running_var`, [c], { kind: 'constant', value: 1 }),
    ];
    return this.node('BatchNormalization', name, inputs, x.shape, { epsilon: float(1e-5), momentum: float(0.9) });
  }

  relu(x: TensorHandle, name?: string): TensorHandle {
    return this.node('Relu', this.auto(name, `${x.name}.relu`), [x.name], x.shape, {});
  }

  maxPool(x: TensorHandle, o: PoolOptions, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.maxpool`);
    return this.node('MaxPool', n, [x.name], this.poolShape(x, o, n), this.poolAttrs(o));
  }

  avgPool(x: TensorHandle, o: AvgPoolOptions, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.avgpool`);
    return this.node('AveragePool', n, [x.name], this.poolShape(x, o, n), {
      ...this.poolAttrs(o),
      count_include_pad: int(o.countIncludePad ? 1 : 0),
    });
  }

  globalAvgPool(x: TensorHandle, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.avgpool`);
    const [c] = spatial(x, n, 'globalAvgPool');
    return this.node('GlobalAveragePool', n, [x.name], [c, 1, 1], {});
  }

  /** ONNX Flatten, axis 1: [N, ...] -> [N, prod(...)] */
  flatten(x: TensorHandle, name?: string): TensorHandle {
    const size = x.shape.reduce((a, b) => a * b, 1);
    return this.node('Flatten', this.auto(name, `${x.name}.flatten`), [x.name], [size], { axis: int(1) });
  }

  /** Gemm with transB=1: the weight is [out, in] as in PyTorch's nn.Linear. */
  linear(x: TensorHandle, out: number, name: string, o: LinearOptions = {}): TensorHandle {
    this.checkFree(name);
    if (x.shape.length !== 1) throw new UserError(`${name}: linear needs a flat input [N, features], got [N, ${x.shape.join(', ')}]; flatten it first`);
    positive(name, { out });
    const fanIn = x.shape[0]!;
    const uniform: InitSpec = { kind: 'uniform', bound: defaultUniformBound(fanIn) };
    const inputs = [x.name, this.param(`${name}.weight`, [out, fanIn], o.init === 'uniform' ? uniform : { kind: 'kaimingNormal', fanIn })];
    if (o.bias ?? true) inputs.push(this.param(`${name}.bias`, [out], o.init === 'uniform' ? uniform : { kind: 'constant', value: 0 }));
    return this.node('Gemm', name, inputs, [out], { transB: int(1) });
  }

  add(a: TensorHandle, b: TensorHandle, name?: string): TensorHandle {
    const n = this.auto(name, `${a.name}.add`);
    if (!sameShape(a.shape, b.shape))
      throw new UserError(`${n}: cannot add ${a.name} [${a.shape.join(',')}] and ${b.name} [${b.shape.join(',')}]: shapes differ`);
    return this.node('Add', n, [a.name, b.name], a.shape, {});
  }

  /** `axis` counts the batch axis, as in ONNX: 1 is the channel axis. */
  concat(xs: readonly TensorHandle[], axis: number, name?: string): TensorHandle {
    if (xs.length === 0) throw new UserError('concat needs at least one tensor');
    const n = this.auto(name, `${xs[0]!.name}.concat`);
    const rank = xs[0]!.shape.length;
    if (!Number.isInteger(axis) || axis < 1 || axis > rank) throw new UserError(`${n}: concat axis must be in 1..${rank} (axis 0 is the batch), got ${axis}`);
    const k = axis - 1;
    for (const x of xs) {
      if (x.shape.length !== rank || x.shape.some((d, i) => i !== k && d !== xs[0]!.shape[i])) {
        throw new UserError(`${n}: cannot concatenate ${x.name} [${x.shape.join(',')}] with ${xs[0]!.name} [${xs[0]!.shape.join(',')}] on axis ${axis}`);
      }
    }
    const shape = [...xs[0]!.shape];
    shape[k] = xs.reduce((s, x) => s + x.shape[k]!, 0);
    return this.node(
      'Concat',
      n,
      xs.map((x) => x.name),
      shape,
      { axis: int(axis) },
    );
  }

  /** Identity at inference; the ratio is a Constant node so it does not count as a parameter. */
  dropout(x: TensorHandle, ratio: number, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.dropout`);
    if (!(ratio >= 0 && ratio < 1)) throw new UserError(`${n}: dropout ratio must be in [0, 1), got ${ratio}`);
    const r = this.constant(`${n}.ratio`, float32([], [ratio]));
    return this.node('Dropout', n, [x.name, r], x.shape, {});
  }

  /** Nearest-neighbour upsampling by an integer factor: output pixel i reads input floor(i / scale). */
  resize(x: TensorHandle, scale: number, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.resize`);
    const [c, h, w] = spatial(x, n, 'resize');
    positive(n, { scale });
    const scales = this.constant(`${n}.scales`, float32([4], [1, 1, scale, scale]));
    return this.node('Resize', n, [x.name, '', scales], [c, h * scale, w * scale], {
      mode: str('nearest'),
      coordinate_transformation_mode: str('asymmetric'),
      nearest_mode: str('floor'),
    });
  }

  // ---- token (sequence) layers: tensors [T, D] per sample, as transformers use ----

  /** ONNX Reshape to a per-sample shape; the batch axis is kept (-1 in the shape constant). */
  reshape(x: TensorHandle, shape: readonly number[], name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.reshape`);
    positive(n, Object.fromEntries(shape.map((d, i) => [`dim ${i}`, d])));
    if (numelOf(shape) !== numelOf(x.shape)) throw new UserError(`${n}: cannot reshape [${x.shape.join(',')}] to [${shape.join(',')}]: sizes differ`);
    const target = this.constant(`${n}.shape`, int64([shape.length + 1], [-1, ...shape]));
    return this.node('Reshape', n, [x.name, target], shape, {});
  }

  /** `perm` orders the per-sample axes (0 = the first axis after the batch). */
  transpose(x: TensorHandle, perm: readonly number[], name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.transpose`);
    if (perm.length !== x.shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
      throw new UserError(`${n}: perm [${perm.join(',')}] is not a permutation of the ${x.shape.length} axes of ${x.name}`);
    }
    return this.node(
      'Transpose',
      n,
      [x.name],
      perm.map((p) => x.shape[p]!),
      { perm: ints([0, ...perm.map((p) => p + 1)]) },
    );
  }

  /** LayerNormalization over the last axis, with `<name>.weight` (ones) and `<name>.bias` (zeros); torchvision's ViT uses eps 1e-6. */
  layerNorm(x: TensorHandle, name: string, eps = 1e-6): TensorHandle {
    this.checkFree(name);
    if (x.shape.length < 1) throw new UserError(`${name}: layerNorm needs a tensor with a feature axis`);
    const d = x.shape.at(-1)!;
    const scale = this.param(`${name}.weight`, [d], { kind: 'constant', value: 1 });
    const inputs = [x.name, scale, this.param(`${name}.bias`, [d], { kind: 'constant', value: 0 })];
    return this.node('LayerNormalization', name, inputs, x.shape, { axis: int(-1), epsilon: float(eps) });
  }

  /**
   * Y = X W^T + b over the last axis of X [..., in], W stored [out, in] as PyTorch's
   * nn.Linear: Transpose(W) -> MatMul -> Add. Keeping W in PyTorch's layout (rather
   * than pre-transposed, as torch.onnx.export leaves it) keeps state_dict names and
   * shapes, so weights move between the two unchanged. The Add is named `name`.
   */
  tokenLinear(x: TensorHandle, out: number, name: string, o: TokenLinearOptions = {}): TensorHandle {
    this.checkFree(name);
    if (x.shape.length < 1) throw new UserError(`${name}: tokenLinear needs a tensor with a feature axis`);
    positive(name, { out });
    const fanIn = x.shape.at(-1)!;
    const uniform: InitSpec = { kind: 'uniform', bound: defaultUniformBound(fanIn) };
    const w = this.param(o.weight ?? `${name}.weight`, [out, fanIn], o.weightInit ?? uniform);
    const b = this.param(o.bias ?? `${name}.bias`, [out], o.biasInit ?? uniform);
    const wt = this.node('Transpose', `${name}.weight_t`, [w], [fanIn, out], { perm: ints([1, 0]) });
    // the weight is not per-sample: its recorded shape must not carry the batch axis
    this.graph.valueInfo.set(wt.name, { name: wt.name, dtype: 'float32', shape: [fanIn, out] });
    const product = this.node('MatMul', `${name}.matmul`, [x.name, wt.name], [...x.shape.slice(0, -1), out], {});
    return this.node('Add', name, [product.name, b], product.shape, {});
  }

  /** Batched matrix product of two per-sample tensors [..., m, k] x [..., k, n] with equal leading axes. */
  matmul(a: TensorHandle, b: TensorHandle, name?: string): TensorHandle {
    const n = this.auto(name, `${a.name}.matmul`);
    const ra = a.shape.length,
      rb = b.shape.length;
    if (ra < 2 || ra !== rb || a.shape.slice(0, -2).some((d, i) => d !== b.shape[i]) || a.shape[ra - 1] !== b.shape[rb - 2]) {
      throw new UserError(`${n}: cannot multiply ${a.name} [${a.shape.join(',')}] by ${b.name} [${b.shape.join(',')}]`);
    }
    return this.node('MatMul', n, [a.name, b.name], [...a.shape.slice(0, -1), b.shape[rb - 1]!], {});
  }

  /** x times a constant. */
  scale(x: TensorHandle, factor: number, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.scale`);
    if (!Number.isFinite(factor)) throw new UserError(`${n}: scale factor must be finite, got ${factor}`);
    return this.node('Mul', n, [x.name, this.constant(`${n}.factor`, float32([], [factor]))], x.shape, {});
  }

  /** `axis` counts per-sample axes (negative from the end). */
  softmax(x: TensorHandle, axis = -1, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.softmax`);
    const k = sampleAxis(x, axis, n);
    return this.node('Softmax', n, [x.name], x.shape, { axis: int(k + 1) });
  }

  /** Exact GELU, x * 0.5 * (1 + erf(x / sqrt 2)): the nodes torch.onnx.export writes for nn.GELU() before opset 20. */
  gelu(x: TensorHandle, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.gelu`);
    const scaled = this.node('Div', `${n}.div`, [x.name, this.constant(`${n}.sqrt2`, float32([], [Math.SQRT2]))], x.shape, {});
    const erf = this.node('Erf', `${n}.erf`, [scaled.name], x.shape, {});
    const plus1 = this.node('Add', `${n}.add`, [erf.name, this.constant(`${n}.one`, float32([], [1]))], x.shape, {});
    const times = this.node('Mul', `${n}.mul`, [x.name, plus1.name], x.shape, {});
    return this.node('Mul', n, [times.name, this.constant(`${n}.half`, float32([], [0.5]))], x.shape, {});
  }

  /** Splits one per-sample axis into parts of the given sizes; outputs are named by `names`. */
  split(x: TensorHandle, axis: number, sizes: readonly number[], names: readonly string[]): TensorHandle[] {
    const base = names[0] ?? `${x.name}.split`;
    const k = sampleAxis(x, axis, base);
    if (sizes.length !== names.length || sizes.length === 0) throw new UserError(`${base}: split needs one name per part`);
    positive(base, Object.fromEntries(sizes.map((s, i) => [`part ${i}`, s])));
    if (sizes.reduce((a, b) => a + b, 0) !== x.shape[k]) {
      throw new UserError(`${base}: parts ${sizes.join('+')} do not add up to axis ${k} of ${x.name} (${x.shape[k]})`);
    }
    for (const nm of names) this.checkFree(nm);
    const splitSizes = this.constant(`${base}.sizes`, int64([sizes.length], sizes));
    const outs = sizes.map((s, i) => {
      const shape = [...x.shape];
      shape[k] = s;
      return { name: names[i]!, shape };
    });
    for (const o of outs) this.claim(o.name);
    this.graph.nodes.push({ name: base, opType: 'Split', inputs: [x.name, splitSizes], outputs: outs.map((o) => o.name), attributes: { axis: int(k + 1) } });
    for (const o of outs) this.graph.valueInfo.set(o.name, { name: o.name, dtype: 'float32', shape: [BATCH_DIM, ...o.shape] });
    return outs;
  }

  /** x[:, index] along a per-sample axis (a Gather with a scalar index: the axis goes away), as torch exports `x[:, 0]`. */
  select(x: TensorHandle, axis: number, index: number, name?: string): TensorHandle {
    const n = this.auto(name, `${x.name}.select`);
    const k = sampleAxis(x, axis, n);
    if (!Number.isInteger(index) || index < 0 || index >= x.shape[k]!) {
      throw new UserError(`${n}: index ${index} is outside axis ${k} of ${x.name} (size ${x.shape[k]})`);
    }
    const i = this.constant(`${n}.index`, scalarInt64(index));
    return this.node(
      'Gather',
      n,
      [x.name, i],
      x.shape.filter((_, j) => j !== k),
      { axis: int(k + 1) },
    );
  }

  /**
   * Prepends one learned token to a token tensor [T, D] -> [T + 1, D]: the parameter
   * `param` [1, 1, D] (torchvision's class_token) is zero-padded to [1, T + 1, D] and
   * added to x zero-padded at the front. The same values as concatenating the token
   * with x broadcast over the batch, without the Shape/Expand chain that needs the
   * batch size at run time (all zeros added are exact).
   */
  prependToken(x: TensorHandle, param: string, init: InitSpec, name: string): TensorHandle {
    this.checkFree(name);
    if (x.shape.length !== 2) throw new UserError(`${name}: prependToken needs a token tensor [N, T, D], got ${x.name} [N, ${x.shape.join(', ')}]`);
    const [t, d] = x.shape as [number, number];
    const token = this.param(param, [1, 1, d], init);
    const padX = this.node('Pad', `${name}.pad_tokens`, [x.name, this.constant(`${name}.pads_tokens`, int64([6], [0, 1, 0, 0, 0, 0]))], [t + 1, d], {});
    const padT = this.node('Pad', `${name}.pad_token`, [token, this.constant(`${name}.pads_token`, int64([6], [0, 0, 0, 0, t, 0]))], [t + 1, d], {});
    this.graph.valueInfo.set(padT.name, { name: padT.name, dtype: 'float32', shape: [1, t + 1, d] });
    return this.node('Add', name, [padX.name, padT.name], [t + 1, d], {});
  }

  /** x + a learned tensor `param` of shape [1, ...x's per-sample shape] (torchvision's pos_embedding). */
  addParameter(x: TensorHandle, param: string, init: InitSpec, name: string): TensorHandle {
    this.checkFree(name);
    const p = this.param(param, [1, ...x.shape], init);
    return this.node('Add', name, [x.name, p], x.shape, {});
  }

  /**
   * Marks x as a graph output called `name`. When x is a node's sole-use result, that
   * node's output is renamed (no extra Identity); the returned handle carries the new
   * name and the old handle must not be used afterwards.
   */
  output(x: TensorHandle, name: string): TensorHandle {
    let result: TensorHandle = x;
    if (name !== x.name) {
      const producer = this.graph.nodes.find((nd) => nd.outputs.includes(x.name));
      const used = this.graph.nodes.some((nd) => nd.inputs.includes(x.name)) || this.graph.outputs.some((v) => v.name === x.name);
      if (producer && !used && !this.names.has(name)) {
        this.claim(name);
        producer.outputs = producer.outputs.map((o) => (o === x.name ? name : o));
        if (producer.name === x.name) producer.name = name;
        const vi = this.graph.valueInfo.get(x.name);
        this.graph.valueInfo.delete(x.name);
        if (vi) this.graph.valueInfo.set(name, { ...vi, name });
        this.names.delete(x.name);
        result = { name, shape: x.shape };
      } else {
        result = this.node('Identity', name, [x.name], x.shape, {});
      }
    }
    this.graph.valueInfo.delete(result.name);
    this.graph.outputs.push({ name: result.name, dtype: 'float32', shape: [BATCH_DIM, ...result.shape] });
    return result;
  }

  build(metadata: Record<string, string> = {}): Model {
    if (this.graph.outputs.length === 0) throw new UserError('the graph has no output: call output() before build()');
    return createModel(this.graph, metadata);
  }

  /** A name not used yet, derived from `base` (for layers the caller does not name). */
  fresh(base: string): string {
    return freshName(base, (name) => this.names.has(name));
  }

  // ---- internals ----

  private auto(name: string | undefined, base: string): string {
    if (name === undefined) return this.fresh(base);
    this.checkFree(name);
    return name;
  }

  private checkFree(name: string): void {
    if (!name) throw new UserError('tensor and layer names must not be empty');
    if (this.names.has(name)) throw new UserError(`name "${name}" is already used in this graph; give each layer its own name`);
  }

  private claim(name: string): void {
    this.checkFree(name);
    this.names.add(name);
  }

  private param(name: string, dims: number[], spec: InitSpec): string {
    this.claim(name);
    this.graph.initializers.set(name, float32(dims, initValues(spec, dims, this.seed, name)));
    return name;
  }

  private constant(name: string, value: Tensor): string {
    this.claim(name);
    this.graph.nodes.push({ name, opType: 'Constant', inputs: [], outputs: [name], attributes: { value: { kind: 'tensor', value } } });
    return name;
  }

  private node(opType: string, name: string, inputs: string[], shape: readonly number[], attributes: Record<string, Attribute>): TensorHandle {
    this.claim(name);
    for (const i of inputs) if (i && !this.names.has(i)) throw new UserError(`${name}: input tensor "${i}" does not exist in this graph`);
    const node: Node = { name, opType, inputs, outputs: [name], attributes };
    this.graph.nodes.push(node);
    const dims: Dim[] = [BATCH_DIM, ...shape];
    this.graph.valueInfo.set(name, { name, dtype: 'float32', shape: dims });
    return { name, shape: [...shape] };
  }

  private poolShape(x: TensorHandle, o: PoolOptions, name: string): number[] {
    const [c, h, w] = spatial(x, name, 'pool');
    const stride = o.stride ?? o.kernel,
      pad = o.pad ?? 0;
    positive(name, { kernel: o.kernel, stride });
    if (!Number.isInteger(pad) || pad < 0 || 2 * pad > o.kernel) throw new UserError(`${name}: pool pad must be an integer in 0..kernel/2, got ${pad}`);
    const size = (n: number): number => poolOutput(n, o.kernel, stride, pad, o.ceil ?? false);
    const oh = size(h),
      ow = size(w);
    if (oh < 1 || ow < 1) throw new UserError(`${name}: input ${h}x${w} is too small for a ${o.kernel}x${o.kernel} pool`);
    return [c, oh, ow];
  }

  private poolAttrs(o: PoolOptions): Record<string, Attribute> {
    const pad = o.pad ?? 0;
    return {
      kernel_shape: ints([o.kernel, o.kernel]),
      strides: ints([o.stride ?? o.kernel, o.stride ?? o.kernel]),
      pads: ints([pad, pad, pad, pad]),
      ceil_mode: int(o.ceil ? 1 : 0),
    };
  }
}

/**
 * Pooled size along one axis. In ceil mode a last window that would start inside the
 * right padding is dropped (PyTorch's and ONNX Runtime's rule).
 */
export function poolOutput(n: number, kernel: number, stride: number, pad: number, ceil: boolean): number {
  const span = n + 2 * pad - kernel;
  if (!ceil) return Math.floor(span / stride) + 1;
  let out = Math.ceil(span / stride) + 1;
  if ((out - 1) * stride >= n + pad) out--;
  return out;
}

function spatial(x: TensorHandle, name: string, op: string): [number, number, number] {
  if (x.shape.length !== 3) throw new UserError(`${name}: ${op} needs an image tensor [N, C, H, W], got ${x.name} [N, ${x.shape.join(', ')}]`);
  return x.shape as [number, number, number];
}

/** A per-sample axis (negative counts from the end), checked. */
function sampleAxis(x: TensorHandle, axis: number, name: string): number {
  const r = x.shape.length;
  const k = axis < 0 ? axis + r : axis;
  if (!Number.isInteger(axis) || k < 0 || k >= r) throw new UserError(`${name}: axis ${axis} is outside the ${r} per-sample axes of ${x.name}`);
  return k;
}

const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

function positive(name: string, values: Record<string, number>): void {
  for (const [k, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v < 1) throw new UserError(`${name}: ${k} must be a positive integer, got ${v}`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
