/**
 * The in-memory IR: plain data that mirrors ONNX's ModelProto/GraphProto closely enough
 * to round-trip every field modelsmith understands, and simple enough to rewrite.
 */

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Typed storage per dtype. float16/bfloat16 are kept as raw 16-bit words. */
export type TensorData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** A dense tensor held in memory (initializers, constants, runtime values). */
export interface Tensor {
  dtype: DType;
  dims: number[];
  data: TensorData;
}

/** A dimension: a fixed size, a symbolic name (e.g. the batch "N"), or unknown. */
export type Dim = number | string | null;

export interface ValueInfo {
  name: string;
  dtype: DType;
  /** undefined when the rank is unknown */
  shape?: Dim[];
}

export type Attribute =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  | { kind: 'string'; value: string }
  | { kind: 'ints'; value: number[] }
  | { kind: 'floats'; value: number[] }
  | { kind: 'strings'; value: string[] }
  | { kind: 'tensor'; value: Tensor }
  /** Subgraphs (If/Loop/Scan bodies) are kept opaque so that they round-trip; no pass looks inside. */
  | { kind: 'opaque'; value: unknown };

export interface Node {
  name: string;
  opType: string;
  domain?: string;
  /** '' marks an omitted optional input, as in ONNX */
  inputs: string[];
  outputs: string[];
  attributes: Record<string, Attribute>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Map<string, Tensor>;
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  /** shapes/dtypes of intermediate tensors, when known */
  valueInfo: Map<string, ValueInfo>;
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface Model {
  graph: Graph;
  irVersion: number;
  opsets: OpsetImport[];
  producerName: string;
  producerVersion: string;
  /** ONNX metadata_props: free-form string pairs; modelsmith's own keys are in metadata.ts */
  metadata: Record<string, string>;
}

/** The opset modelsmith writes (and the minimum its graph rewrites assume). */
export const DEFAULT_OPSET = 17;
export const DEFAULT_IR_VERSION = 8;
