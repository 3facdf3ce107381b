/**
 * What a shape rule sees of one node: its inputs' dtypes, shapes and (when known)
 * values, and its attributes; and what a rule must provide. The rules themselves live
 * in rules-*.ts, the graph walk in shapes.ts.
 */
import type { DType, Dim, Node, Tensor } from './types.js';
import { toNumbers } from './tensor.js';
import { attrInt, attrInts } from './graph.js';
import { UserError } from '../util/errors.js';
import { isNum, normAxis } from './dims.js';
import { MAX_FOLD_ELEMENTS } from './evaluate.js';

/** Everything inference knows about one tensor. */
export interface Known {
  dtype: DType;
  /** undefined when even the rank is unknown */
  shape?: Dim[];
  /** the full value: initializers, Constant nodes, and what folding computed */
  tensor?: Tensor;
  /**
   * Element values of a small integer tensor when only some are known, e.g.
   * Shape(x) for x of shape [N,3,32,32] is ['N',3,32,32]. Flattened, row-major.
   */
  values?: Dim[];
}

/** One output of a rule. */
export interface OutInfo {
  dtype: DType;
  shape?: Dim[];
  values?: Dim[];
}

export interface OpRule {
  /** [required, maximum] number of inputs (trailing optional inputs may be omitted or '') */
  inputs: [number, number];
  /** [required, maximum] number of outputs; [1, 1] when absent */
  outputs?: [number, number];
  /** attributes without which the node means nothing */
  attrs?: string[];
  infer(ctx: NodeContext): OutInfo[];
  /** symbolic element values of output 0 (shape arithmetic), when the rule can tell */
  values?(ctx: NodeContext): Dim[] | undefined;
}

export class NodeContext {
  constructor(
    readonly node: Node,
    private readonly known: (Known | undefined)[],
    readonly opset: number,
  ) {}

  /** `node "conv2" (Conv)`: the prefix of every message about this node. */
  get where(): string {
    return `node "${this.node.name}" (${this.node.opType})`;
  }

  fail(message: string): never {
    throw new UserError(`${this.where}: ${message}`);
  }

  /** The input, or undefined when it is omitted. */
  input(i: number): Known | undefined {
    return this.node.inputs[i] ? this.known[i] : undefined;
  }

  has(i: number): boolean {
    return !!this.node.inputs[i];
  }

  dtype(i: number): DType {
    return this.input(i)?.dtype ?? 'float32';
  }

  shape(i: number): Dim[] | undefined {
    return this.input(i)?.shape;
  }

  /** Element values (numbers or symbols) of a small integer input, when known. */
  values(i: number): Dim[] | undefined {
    const k = this.input(i);
    if (!k) return undefined;
    // Large tensors are weights, never shape arithmetic; converting them would only cost time.
    if (k.tensor) return k.tensor.data.length <= MAX_FOLD_ELEMENTS ? toNumbers(k.tensor) : undefined;
    return k.values;
  }

  /** Numeric values of an input, when all of them are known. */
  numbers(i: number): number[] | undefined {
    const v = this.values(i);
    return v && v.every(isNum) ? v : undefined;
  }

  int(name: string, fallback: number): number {
    return attrInt(this.node, name, fallback);
  }

  ints(name: string): number[] | undefined {
    return attrInts(this.node, name);
  }

  /** A tensor-input parameter that older opsets passed as an attribute (axes, pads, split...). */
  inputOrAttr(i: number, attr: string): number[] | undefined {
    return this.has(i) ? this.numbers(i) : this.ints(attr);
  }

  axis(axis: number, rank: number): number {
    return normAxis(axis, rank, this.where);
  }
}

/** A single output with the given dtype and shape. */
export const one = (dtype: DType, shape?: Dim[], values?: Dim[]): OutInfo[] => [{ dtype, ...(shape ? { shape } : {}), ...(values ? { values } : {}) }];
