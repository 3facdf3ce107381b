/** Shape rules for the network layers: convolutions, pooling, normalisation, dense products. */
import type { Dim } from './types.js';
import { type NodeContext, type OpRule, type OutInfo, one } from './op-context.js';
import { autoPadProblem, axisPads, broadcastShapes, fmt, isNum, unifyDim, type Window, windowOutput } from './dims.js';
import { attrString } from './graph.js';

/**
 * Per spatial axis window geometry from kernel_shape/strides/dilations/pads/auto_pad.
 * SAME_* pads depend on the input size, so they are resolved per axis (null size -> unknown).
 */
function windows(c: NodeContext, spatial: Dim[], kernel: number[]): (Window | undefined)[] {
  const r = spatial.length;
  const strides = c.ints('strides') ?? new Array<number>(r).fill(1);
  const dilations = c.ints('dilations') ?? new Array<number>(r).fill(1);
  const pads = c.ints('pads') ?? new Array<number>(2 * r).fill(0);
  const autoPad = attrString(c.node, 'auto_pad', 'NOTSET');
  if (kernel.length !== r || strides.length !== r || dilations.length !== r || pads.length !== 2 * r) {
    c.fail(`kernel_shape/strides/dilations/pads do not match the ${r} spatial axes of the input`);
  }
  const problem = autoPadProblem(autoPad);
  if (problem) c.fail(problem);
  return spatial.map((size, i) => {
    const p = axisPads(autoPad, size, kernel[i]!, strides[i]!, dilations[i]!, [pads[i]!, pads[i + r]!]);
    return p && { kernel: kernel[i]!, stride: strides[i]!, dilation: dilations[i]!, padBegin: p[0], padEnd: p[1] };
  });
}

function spatialOut(c: NodeContext, x: Dim[], kernel: number[] | undefined, ceil: boolean): Dim[] {
  const spatial = x.slice(2);
  if (!kernel || kernel.some((k) => !isNum(k))) return spatial.map(() => null);
  return windows(c, spatial, kernel).map((w, i) => (w ? windowOutput(spatial[i]!, w, ceil) : null));
}

/** kernel_shape, or the weight's spatial dims when the attribute is absent (allowed for Conv). */
function kernelOf(c: NodeContext, w: Dim[] | undefined): number[] | undefined {
  const k = c.ints('kernel_shape');
  if (k) return k;
  const spatial = w?.slice(2);
  return spatial && spatial.every(isNum) ? spatial : undefined;
}

function checkBias(c: NodeContext, index: number, channels: Dim): void {
  const b = c.shape(index);
  if (!b) return;
  if (b.length !== 1) c.fail(`bias should be 1-D, found shape ${fmt(b)}`);
  unifyDim(b[0]!, channels, () => c.fail(`bias has ${b[0]} values, the weight has ${channels} output channels`));
}

/** Conv and ConvTranspose read alike: input x, weight w (of x's rank when known) and group; nothing is known of the output while x's shape is not. */
function convLike(infer: (c: NodeContext, x: Dim[], w: Dim[] | undefined, group: number) => OutInfo[]): OpRule {
  return {
    inputs: [2, 3],
    infer(c) {
      const x = c.shape(0);
      const w = c.shape(1);
      if (!x) return one(c.dtype(0));
      if (w && w.length !== x.length) c.fail(`weight ${fmt(w)} and input ${fmt(x)} have different ranks`);
      return infer(c, x, w, c.int('group', 1));
    },
  };
}

const conv = convLike((c, x, w, group) => {
  if (x.length < 3) c.fail(`input should have rank 3 or more ([N,C,spatial...]), found ${fmt(x)}`);
  if (w) {
    if (isNum(w[1]) && isNum(x[1]) && x[1] !== w[1] * group) {
      c.fail(`input has ${x[1]} channels, weight expects ${w[1] * group}`);
    }
    checkBias(c, 2, w[0]!);
  }
  const kernel = kernelOf(c, w);
  return one(c.dtype(0), [x[0]!, w ? w[0]! : null, ...spatialOut(c, x, kernel, false)]);
});

const convTranspose = convLike((c, x, w, group) => {
  let channels: Dim = null;
  if (w) {
    unifyDim(x[1]!, w[0]!, () => c.fail(`input has ${x[1]} channels, weight expects ${w[0]}`));
    channels = isNum(w[1]) ? w[1] * group : null;
    checkBias(c, 2, channels);
  }
  const spatial = x.slice(2);
  const explicit = c.ints('output_shape');
  if (explicit) return one(c.dtype(0), [x[0]!, channels, ...explicit.slice(-spatial.length)]);
  const kernel = kernelOf(c, w);
  const outPad = c.ints('output_padding') ?? spatial.map(() => 0);
  const autoPad = attrString(c.node, 'auto_pad', 'NOTSET');
  const strides = c.ints('strides') ?? spatial.map(() => 1);
  const out = spatial.map((size, i): Dim => {
    if (!isNum(size) || !kernel || kernel.length !== spatial.length) return null;
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return size * strides[i]!;
    const w0 = windows(c, spatial, kernel)[i]!;
    const pads = autoPad === 'VALID' ? 0 : w0.padBegin + w0.padEnd;
    return w0.stride * (size - 1) + outPad[i]! + (w0.kernel - 1) * w0.dilation + 1 - pads;
  });
  return one(c.dtype(0), [x[0]!, channels, ...out]);
});

const pool = (outputs: [number, number]): OpRule => ({
  inputs: [1, 1],
  outputs,
  attrs: ['kernel_shape'],
  infer(c) {
    const x = c.shape(0);
    if (x && x.length < 3) c.fail(`input should have rank 3 or more ([N,C,spatial...]), found ${fmt(x)}`);
    const shape = x ? [x[0]!, x[1]!, ...spatialOut(c, x, c.ints('kernel_shape'), c.int('ceil_mode', 0) === 1)] : undefined;
    return [one(c.dtype(0), shape)[0]!, ...one('int64', shape)];
  },
});

/**
 * MaxUnpool(X, I[, output_shape]): output_shape when given, else each spatial axis
 * (in - 1) * stride + kernel - pads.
 */
const maxUnpool: OpRule = {
  inputs: [2, 3],
  attrs: ['kernel_shape'],
  infer(c) {
    const x = c.shape(0);
    if (c.has(2)) {
      const given = c.numbers(2);
      if (given) return one(c.dtype(0), given);
      // sizes computed at run time: the rank is still the shape input's length, or the input's
      const rank = c.shape(2)?.[0] ?? x?.length;
      return one(c.dtype(0), typeof rank === 'number' ? new Array<Dim>(rank).fill(null) : undefined);
    }
    if (!x) return one(c.dtype(0));
    const spatial = x.slice(2);
    const out = windows(c, spatial, c.ints('kernel_shape')!).map((w, i): Dim => {
      const d = spatial[i]!;
      return w && isNum(d) ? (d - 1) * w.stride + w.kernel - w.padBegin - w.padEnd : null;
    });
    return one(c.dtype(0), [x[0]!, x[1]!, ...out]);
  },
};

const globalPool: OpRule = {
  inputs: [1, 1],
  infer(c) {
    const x = c.shape(0);
    return one(c.dtype(0), x ? [x[0]!, x[1]!, ...x.slice(2).map(() => 1)] : undefined);
  },
};

const batchNorm: OpRule = {
  inputs: [5, 5],
  outputs: [1, 5],
  infer(c) {
    const x = c.shape(0);
    const channels: Dim = x && x.length > 1 ? x[1]! : null;
    for (let i = 1; i < 5; i++) {
      const p = c.shape(i);
      if (!p) continue;
      if (p.length !== 1) c.fail(`parameter "${c.node.inputs[i]}" should be 1-D, found ${fmt(p)}`);
      unifyDim(channels, p[0]!, () => c.fail(`input has ${channels} channels, parameter "${c.node.inputs[i]}" has ${p[0]} values`));
    }
    const stat = one(c.dtype(1), [channels])[0]!;
    return [one(c.dtype(0), x)[0]!, stat, stat, stat, stat].slice(0, Math.max(1, c.node.outputs.length));
  },
};

const layerNorm: OpRule = {
  inputs: [2, 3],
  outputs: [1, 3],
  infer(c) {
    const x = c.shape(0);
    if (!x) return [one(c.dtype(0))[0]!, ...one('float32'), ...one('float32')];
    const axis = c.axis(c.int('axis', -1), x.length);
    const stats = x.map((d, i) => (i < axis ? d : 1));
    return [one(c.dtype(0), x)[0]!, ...one('float32', stats), ...one('float32', stats)];
  },
};

const gemm: OpRule = {
  inputs: [2, 3],
  infer(c) {
    const a = c.shape(0);
    const b = c.shape(1);
    if (a && a.length !== 2) c.fail(`A should be 2-D, found ${fmt(a)}`);
    if (b && b.length !== 2) c.fail(`B should be 2-D, found ${fmt(b)}`);
    const [m, ka] = a ? (c.int('transA', 0) ? [a[1]!, a[0]!] : [a[0]!, a[1]!]) : [null, null];
    const [kb, n] = b ? (c.int('transB', 0) ? [b[1]!, b[0]!] : [b[0]!, b[1]!]) : [null, null];
    unifyDim(ka, kb, () => c.fail(`A has ${ka} columns (K), B expects ${kb}`));
    const out: Dim[] = [m, n];
    const bias = c.shape(2);
    if (bias) broadcastShapes([out, bias], `${c.where}: bias C`);
    return one(c.dtype(0), out);
  },
};

const matmul: OpRule = {
  inputs: [2, 2],
  infer(c) {
    const a = c.shape(0);
    const b = c.shape(1);
    if (!a || !b) return one(c.dtype(0));
    if (a.length === 0 || b.length === 0) c.fail('inputs must not be scalars');
    const a2 = a.length === 1 ? [1, a[0]!] : a;
    const b2 = b.length === 1 ? [b[0]!, 1] : b;
    const ka = a2[a2.length - 1]!;
    const kb = b2[b2.length - 2]!;
    unifyDim(ka, kb, () => c.fail(`A ${fmt(a)} has ${ka} columns (K), B ${fmt(b)} has ${kb} rows`));
    const batch = broadcastShapes([a2.slice(0, -2), b2.slice(0, -2)], c.where);
    const out = [...batch, ...(a.length === 1 ? [] : [a2[a2.length - 2]!]), ...(b.length === 1 ? [] : [b2[b2.length - 1]!])];
    return one(c.dtype(0), out);
  },
};

/** SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss: a scalar loss unless reduction is 'none'. */
const loss: OpRule = {
  inputs: [2, 3],
  outputs: [1, 2],
  infer(c) {
    const reduction = attrString(c.node, 'reduction', 'mean');
    if (!['mean', 'sum', 'none'].includes(reduction)) c.fail(`reduction "${reduction}" is not one of mean, sum, none`);
    const lossShape = reduction === 'none' ? c.shape(1) : [];
    return [one(c.dtype(0), lossShape)[0]!, one(c.dtype(0), c.shape(0))[0]!];
  },
};

const topK: OpRule = {
  inputs: [2, 2],
  outputs: [2, 2],
  infer(c) {
    const x = c.shape(0);
    if (!x) return [one(c.dtype(0))[0]!, one('int64')[0]!];
    const axis = c.axis(c.int('axis', -1), x.length);
    const k = c.numbers(1)?.[0] ?? null;
    const out = x.map((d, i) => (i === axis ? k : d));
    return [one(c.dtype(0), out)[0]!, one('int64', out)[0]!];
  },
};

export const NN_RULES: Record<string, OpRule> = {
  Conv: conv,
  ConvTranspose: convTranspose,
  MaxPool: pool([1, 2]),
  MaxUnpool: maxUnpool,
  AveragePool: pool([1, 1]),
  LpPool: pool([1, 1]),
  GlobalAveragePool: globalPool,
  GlobalMaxPool: globalPool,
  BatchNormalization: batchNorm,
  LayerNormalization: layerNorm,
  Gemm: gemm,
  MatMul: matmul,
  SoftmaxCrossEntropyLoss: loss,
  NegativeLogLikelihoodLoss: { ...loss, outputs: [1, 1] },
  TopK: topK,
};
