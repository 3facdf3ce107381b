/**
 * Tiny hand-built models for tests of the IR passes, and a one-call way to run a model
 * through ONNX Runtime (single-threaded, so results are deterministic).
 */
import * as ort from 'onnxruntime-node';
import type { Attribute, Dim, DType, Model, Node, Tensor, ValueInfo } from '../../src/onnx/types.js';
import { createModel, emptyGraph, int, ints } from '../../src/onnx/graph.js';
import { float32, int64, numel } from '../../src/onnx/tensor.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { Rng } from '../../src/util/random.js';

let counter = 0;

export function node(opType: string, inputs: string[], outputs: string[], attributes: Record<string, Attribute> = {}, name?: string): Node {
  return { name: name ?? `${opType.toLowerCase()}_${counter++}`, opType, inputs, outputs, attributes };
}

export const vi = (name: string, shape?: Dim[], dtype: DType = 'float32'): ValueInfo => (shape ? { name, dtype, shape } : { name, dtype });

export interface ModelParts {
  nodes: Node[];
  inputs: ValueInfo[];
  /** output names (dtype float32, shape left for inference) or full value infos */
  outputs: (string | ValueInfo)[];
  initializers?: Record<string, Tensor>;
}

export function buildModel(p: ModelParts): Model {
  const g = emptyGraph('test');
  g.nodes = p.nodes;
  g.inputs = p.inputs;
  g.outputs = p.outputs.map((o) => (typeof o === 'string' ? { name: o, dtype: 'float32' } : o));
  for (const [k, t] of Object.entries(p.initializers ?? {})) g.initializers.set(k, t);
  return createModel(g);
}

/** A float32 tensor of seeded normal values scaled by `scale`. */
export function randn(rng: Rng, dims: number[], scale = 0.5): Tensor {
  return float32(
    dims,
    Array.from({ length: numel(dims) }, () => rng.normal() * scale),
  );
}

/**
 * input [N,3,8,8] -> Conv(4 filters, 3x3, pad 1) -> Relu -> MaxPool(2) -> `features` [N,4,4,4]
 * -> Flatten -> Gemm(10, transB) -> `logits` [N,10].
 */
export function tinyConvNet(seed = 1): Model {
  const rng = new Rng(seed);
  return buildModel({
    inputs: [vi('input', ['N', 3, 8, 8])],
    outputs: ['logits'],
    initializers: { w1: randn(rng, [4, 3, 3, 3]), b1: randn(rng, [4]), fc_w: randn(rng, [10, 64]), fc_b: randn(rng, [10]) },
    nodes: [
      node('Conv', ['input', 'w1', 'b1'], ['conv1'], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }, 'conv1'),
      node('Relu', ['conv1'], ['relu1'], {}, 'relu1'),
      node('MaxPool', ['relu1'], ['features'], { kernel_shape: ints([2, 2]), strides: ints([2, 2]) }, 'pool1'),
      node('Flatten', ['features'], ['flat'], { axis: int(1) }, 'flatten'),
      node('Gemm', ['flat', 'fc_w', 'fc_b'], ['logits'], { transB: int(1) }, 'fc'),
    ],
  });
}

/**
 * PyTorch's `x.view(x.size(0), -1)` as exported: Shape -> Gather(0) -> Unsqueeze ->
 * Concat([N], [-1]) -> Reshape, between a conv block and a linear layer; with an
 * Identity and a Dropout thrown in, as exporters leave them.
 */
export function torchViewNet(seed = 2): Model {
  const rng = new Rng(seed);
  return buildModel({
    inputs: [vi('input', ['N', 3, 8, 8])],
    outputs: ['logits'],
    initializers: {
      w1: randn(rng, [4, 3, 3, 3]),
      fc_w: randn(rng, [64, 10]),
      fc_b: randn(rng, [10]),
      zero: int64([], [0]),
      axes0: int64([1], [0]),
    },
    nodes: [
      node('Conv', ['input', 'w1'], ['conv1'], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]), strides: ints([2, 2]) }, 'conv1'),
      node('Relu', ['conv1'], ['relu1'], {}, 'relu1'),
      node('Identity', ['relu1'], ['relu1_id'], {}, 'identity'),
      node('Shape', ['relu1_id'], ['shape'], {}, 'shape'),
      node('Gather', ['shape', 'zero'], ['batch'], { axis: int(0) }, 'gather'),
      node('Unsqueeze', ['batch', 'axes0'], ['batch1'], {}, 'unsqueeze'),
      node('Constant', [], ['minus1'], { value: { kind: 'tensor', value: int64([1], [-1]) } }, 'constant'),
      node('Concat', ['batch1', 'minus1'], ['target'], { axis: int(0) }, 'concat'),
      node('Reshape', ['relu1_id', 'target'], ['flat'], {}, 'reshape'),
      node('Dropout', ['flat'], ['flat_d'], {}, 'dropout'),
      node('MatMul', ['flat_d', 'fc_w'], ['mm'], {}, 'matmul'),
      node('Add', ['mm', 'fc_b'], ['logits'], {}, 'add'),
    ],
  });
}

/** input [N,2,6,6] -> Conv -> Relu -> (+ input) -> Relu -> GlobalAveragePool -> Flatten -> Gemm -> `out` [N,3]. */
export function residualNet(seed = 3): Model {
  const rng = new Rng(seed);
  return buildModel({
    inputs: [vi('input', ['N', 2, 6, 6])],
    outputs: ['out'],
    initializers: { w: randn(rng, [2, 2, 3, 3]), fc_w: randn(rng, [3, 2]), fc_b: randn(rng, [3]) },
    nodes: [
      node('Conv', ['input', 'w'], ['c'], { kernel_shape: ints([3, 3]), pads: ints([1, 1, 1, 1]) }, 'conv'),
      node('Relu', ['c'], ['r'], {}, 'relu'),
      node('Add', ['r', 'input'], ['sum'], {}, 'add'),
      node('Relu', ['sum'], ['block'], {}, 'relu2'),
      node('GlobalAveragePool', ['block'], ['gap'], {}, 'gap'),
      node('Flatten', ['gap'], ['flat'], {}, 'flatten'),
      node('Gemm', ['flat', 'fc_w', 'fc_b'], ['out'], { transB: int(1) }, 'fc'),
    ],
  });
}

export interface OrtValue {
  dims: number[];
  data: Float32Array | BigInt64Array | Uint8Array | Int32Array | Float64Array;
}

/** Runs `model` in ONNX Runtime with one intra-op thread; feeds are float32 unless given as IR tensors. */
export async function runOrt(model: Model, feeds: Record<string, Tensor>, outputs?: string[]): Promise<Record<string, OrtValue>> {
  const session = await ort.InferenceSession.create(encodeModel(model), { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const inputs: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(feeds)) inputs[k] = new ort.Tensor(t.dtype as 'float32', t.data as Float32Array, t.dims);
    const res = await session.run(inputs, outputs ?? session.outputNames);
    const out: Record<string, OrtValue> = {};
    for (const [k, v] of Object.entries(res)) out[k] = { dims: [...v.dims], data: v.data as OrtValue['data'] };
    return out;
  } finally {
    await session.release();
  }
}
