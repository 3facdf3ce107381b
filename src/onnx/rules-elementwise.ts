/** Shape rules for elementwise operators: unary maps, broadcasting binary and variadic ops. */
import type { DType, Dim } from './types.js';
import { type NodeContext, type OpRule, one } from './op-context.js';
import { broadcastShapes, isNum } from './dims.js';

/** Output = input 0, same dtype and shape. */
const sameAs = (inputs: [number, number] = [1, 1]): OpRule => ({
  inputs,
  infer: (c) => one(c.dtype(0), c.shape(0)),
});

const UNARY = [
  'Relu',
  'Sigmoid',
  'Tanh',
  'LeakyRelu',
  'Sqrt',
  'Exp',
  'Log',
  'Erf',
  'Softmax',
  'LogSoftmax',
  'Abs',
  'Reciprocal',
  'Floor',
  'Ceil',
  'Round',
  'Sign',
  'Elu',
  'Selu',
  'HardSigmoid',
  'HardSwish',
  'Softplus',
  'Softsign',
  'Sin',
  'Cos',
  'Not',
  'LRN',
  'Gelu',
];

function broadcastAll(c: NodeContext, from = 0): Dim[] | undefined {
  const shapes: Dim[][] = [];
  for (let i = from; i < c.node.inputs.length; i++) {
    if (!c.has(i)) continue;
    const s = c.shape(i);
    if (!s) return undefined;
    shapes.push(s);
  }
  return broadcastShapes(shapes, c.where);
}

const broadcasting = (dtype: (c: NodeContext) => DType, inputs: [number, number] = [2, 2]): OpRule => ({
  inputs,
  infer: (c) => one(dtype(c), broadcastAll(c)),
});

/**
 * Integer arithmetic on shape values, keeping symbols where the other side is the
 * identity (N*1, N+0), so that e.g. Shape(x)[0] * 1 is still the batch N.
 */
function arithmetic(f: (a: number, b: number) => number, unit: number, commutes: boolean): (c: NodeContext) => Dim[] | undefined {
  return (c) => {
    const a = c.values(0);
    const b = c.values(1);
    if (!a || !b || c.dtype(0).startsWith('float')) return undefined;
    const n = Math.max(a.length, b.length);
    if (a.length !== n && a.length !== 1) return undefined;
    if (b.length !== n && b.length !== 1) return undefined;
    return Array.from({ length: n }, (_, i) => {
      const x = a[a.length === 1 ? 0 : i]!;
      const y = b[b.length === 1 ? 0 : i]!;
      if (isNum(x) && isNum(y)) return f(x, y);
      if (y === unit) return x;
      if (commutes && x === unit) return y;
      return null;
    });
  };
}

export const ELEMENTWISE_RULES: Record<string, OpRule> = {
  ...Object.fromEntries(UNARY.map((op) => [op, sameAs()])),
  Identity: { inputs: [1, 1], infer: (c) => one(c.dtype(0), c.shape(0)), values: (c) => c.values(0) },
  Neg: { inputs: [1, 1], infer: (c) => one(c.dtype(0), c.shape(0)), values: (c) => c.values(0)?.map((v) => (isNum(v) ? -v : null)) },
  Clip: sameAs([1, 3]),
  InstanceNormalization: sameAs([3, 3]),
  Dropout: {
    inputs: [1, 3],
    outputs: [1, 2],
    infer: (c) => [
      { dtype: c.dtype(0), ...shapeOf(c) },
      { dtype: 'bool', ...shapeOf(c) },
    ],
  },
  Add: { ...broadcasting((c) => c.dtype(0)), values: arithmetic((a, b) => a + b, 0, true) },
  Sub: { ...broadcasting((c) => c.dtype(0)), values: arithmetic((a, b) => a - b, 0, false) },
  Mul: { ...broadcasting((c) => c.dtype(0)), values: arithmetic((a, b) => a * b, 1, true) },
  Div: { ...broadcasting((c) => c.dtype(0)), values: arithmetic((a, b) => Math.trunc(a / b), 1, false) },
  Pow: broadcasting((c) => c.dtype(0)),
  Mod: broadcasting((c) => c.dtype(0)),
  PRelu: broadcasting((c) => c.dtype(0)),
  ...Object.fromEntries(['Equal', 'Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'And', 'Or', 'Xor'].map((op) => [op, broadcasting(() => 'bool')])),
  ...Object.fromEntries(['Max', 'Min', 'Sum', 'Mean'].map((op) => [op, broadcasting((c) => c.dtype(0), [1, 2 ** 31])])),
  Where: broadcasting((c) => c.dtype(1), [3, 3]),
};

function shapeOf(c: NodeContext): { shape?: Dim[] } {
  const s = c.shape(0);
  return s ? { shape: s } : {};
}
