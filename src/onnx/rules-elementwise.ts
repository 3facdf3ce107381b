/** Shape rules for elementwise operators: unary maps, broadcasting binary and variadic ops. */
import type { DType, Dim } from './types.js';
import { type NodeContext, type OpRule, one } from './op-context.js';
import { DIM_ARITHMETIC, broadcastShapes, isNum } from './dims.js';

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
 * Integer arithmetic on shape values (dims.ts DIM_ARITHMETIC), elementwise with numpy
 * broadcasting of the two value lists, so that e.g. Shape(x)[0] * 49 is the dim N*49.
 */
function arithmetic(f: (a: Dim, b: Dim) => Dim): (c: NodeContext) => Dim[] | undefined {
  return (c) => {
    const a = c.values(0);
    const b = c.values(1);
    if (!a || !b || c.dtype(0).startsWith('float')) return undefined;
    const n = Math.max(a.length, b.length);
    if (a.length !== n && a.length !== 1) return undefined;
    if (b.length !== n && b.length !== 1) return undefined;
    return Array.from({ length: n }, (_, i) => f(a[a.length === 1 ? 0 : i]!, b[b.length === 1 ? 0 : i]!));
  };
}

/**
 * Equal on shape values: numbers compare; a symbol is a size, never negative, so it
 * differs from a negative number (torchvision's ViT tests Concat(N, -1, -1) == -1 to
 * expand its class token); the same symbol is equal to itself.
 */
function equalValues(c: NodeContext): Dim[] | undefined {
  return arithmetic((a, b) => {
    if (a === null || b === null) return null;
    if (isNum(a) && isNum(b)) return Number(a === b);
    if (a === b) return 1;
    return (isNum(a) && a < 0) || (isNum(b) && b < 0) ? 0 : null;
  })(c);
}

/** Where on shape values: picks from x or y wherever the condition is known. */
function whereValues(c: NodeContext): Dim[] | undefined {
  const [cond, x, y] = [c.values(0), c.values(1), c.values(2)];
  if (!cond || !x || !y) return undefined;
  const n = Math.max(cond.length, x.length, y.length);
  if (![cond, x, y].every((v) => v.length === n || v.length === 1)) return undefined;
  const at = (v: Dim[], i: number): Dim => v[v.length === 1 ? 0 : i]!;
  return Array.from({ length: n }, (_, i) => {
    const k = at(cond, i);
    return k === null || !isNum(k) ? null : k ? at(x, i) : at(y, i);
  });
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
  Add: { ...broadcasting((c) => c.dtype(0)), values: arithmetic(DIM_ARITHMETIC.add) },
  Sub: { ...broadcasting((c) => c.dtype(0)), values: arithmetic(DIM_ARITHMETIC.sub) },
  Mul: { ...broadcasting((c) => c.dtype(0)), values: arithmetic(DIM_ARITHMETIC.mul) },
  Div: { ...broadcasting((c) => c.dtype(0)), values: arithmetic(DIM_ARITHMETIC.intDiv) },
  Pow: broadcasting((c) => c.dtype(0)),
  Mod: { ...broadcasting((c) => c.dtype(0)), values: (c) => (c.int('fmod', 0) === 0 ? arithmetic(DIM_ARITHMETIC.mod)(c) : undefined) },
  PRelu: broadcasting((c) => c.dtype(0)),
  Equal: { ...broadcasting(() => 'bool'), values: equalValues },
  ...Object.fromEntries(['Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'And', 'Or', 'Xor'].map((op) => [op, broadcasting(() => 'bool')])),
  ...Object.fromEntries(['Max', 'Min', 'Sum', 'Mean'].map((op) => [op, broadcasting((c) => c.dtype(0), [1, 2 ** 31])])),
  Where: { ...broadcasting((c) => c.dtype(1), [3, 3]), values: whereValues },
};

function shapeOf(c: NodeContext): { shape?: Dim[] } {
  const s = c.shape(0);
  return s ? { shape: s } : {};
}
