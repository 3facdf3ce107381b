/**
 * ONNX protobuf <-> IR. The schema comes from the `onnx-proto` package (generated
 * protobufjs code for onnx.proto); this module only converts between its messages and
 * the plain IR in types.ts, and guards against untrusted files.
 */
import { readFileSync, statSync, openSync, readSync, closeSync, realpathSync, type Stats } from 'node:fs';
import { dirname, resolve, relative, isAbsolute } from 'node:path';
import onnxProto from 'onnx-proto';
import type { onnx as O } from 'onnx-proto';
import type { Attribute, DType, Graph, Model, Node, Tensor, TensorData, ValueInfo, Dim } from './types.js';
import { allocate, numel, BYTES_PER_ELEMENT } from './tensor.js';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/atomic.js';

const { onnx } = onnxProto;

const DTYPE_OF_CODE: Record<number, DType> = {
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  16: 'bfloat16',
};
const CODE_OF_DTYPE: Record<DType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  float64: 11,
  bfloat16: 16,
};
const TENSOR_TYPE_NAMES: Record<number, string> = {
  0: 'UNDEFINED',
  4: 'UINT16',
  8: 'STRING',
  12: 'UINT32',
  13: 'UINT64',
  14: 'COMPLEX64',
  15: 'COMPLEX128',
};

export function dtypeFromCode(code: number, where: string): DType {
  const d = DTYPE_OF_CODE[code];
  if (!d)
    throw new UserError(`${where}: element type ${TENSOR_TYPE_NAMES[code] ?? code} is not supported (supported: ${Object.values(DTYPE_OF_CODE).join(', ')})`);
  return d;
}
export const dtypeCode = (d: DType): number => CODE_OF_DTYPE[d];

function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'toNumber' in v) return (v as { toNumber(): number }).toNumber();
  return Number(v ?? 0);
}

interface LoadContext {
  file: string;
  dir: string;
}

/** Largest model file modelsmith will read in one piece (protobuf's own hard limit is 2 GiB). */
export const MAX_MODEL_BYTES = 2 ** 31 - 1;

/** Loads an .onnx file. External-data tensors are read only from inside the model's folder. */
export function loadModel(path: string): Model {
  let stat: Stats;
  try {
    stat = statSync(path);
  } catch {
    throw new UserError(`model file not found: ${path}`);
  }
  if (!stat.isFile()) throw new UserError(`${path} is ${stat.isDirectory() ? 'a folder' : 'not a regular file'}; expected an .onnx model file`);
  if (stat.size > MAX_MODEL_BYTES) throw new UserError(`${path}: ${stat.size} bytes is over the 2 GiB protobuf limit; save large weights as external data`);
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UserError(`${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeModel(bytes, { file: path, dir: dirname(resolve(path)) });
}

export function decodeModel(bytes: Uint8Array, ctx: LoadContext = { file: '<bytes>', dir: process.cwd() }): Model {
  let m: O.IModelProto;
  try {
    m = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new UserError(`${ctx.file}: not a valid ONNX model (protobuf decoding failed: ${(e as Error).message}); is the file truncated or of another format?`);
  }
  if (!m.graph || num(m.irVersion) <= 0) {
    throw new UserError(`${ctx.file}: not an ONNX model (no graph or no ir_version found)`);
  }
  const metadata: Record<string, string> = {};
  for (const p of m.metadataProps ?? []) metadata[p.key ?? ''] = p.value ?? '';
  return {
    graph: graphFromProto(m.graph, ctx),
    irVersion: num(m.irVersion),
    opsets: (m.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: num(o.version) })),
    producerName: m.producerName ?? '',
    producerVersion: m.producerVersion ?? '',
    metadata,
  };
}

function graphFromProto(g: O.IGraphProto, ctx: LoadContext): Graph {
  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer ?? []) initializers.set(t.name ?? '', tensorFromProto(t, ctx));
  const valueInfo = new Map<string, ValueInfo>();
  for (const v of g.valueInfo ?? []) {
    const vi = valueInfoFromProto(v, ctx);
    if (vi) valueInfo.set(vi.name, vi);
  }
  const inputs = (g.input ?? []).map((v) => valueInfoFromProto(v, ctx)).filter((v): v is ValueInfo => !!v);
  return {
    name: g.name ?? 'graph',
    nodes: (g.node ?? []).map((n, i) => nodeFromProto(n, i, ctx)),
    initializers,
    // Old exporters list initializers among the inputs; they are not runtime inputs.
    inputs: inputs.filter((v) => !initializers.has(v.name)),
    outputs: (g.output ?? []).map((v) => valueInfoFromProto(v, ctx)).filter((v): v is ValueInfo => !!v),
    valueInfo,
  };
}

function valueInfoFromProto(v: O.IValueInfoProto, ctx: LoadContext): ValueInfo | undefined {
  const tt = v.type?.tensorType;
  const name = v.name ?? '';
  if (!tt) return { name, dtype: 'float32' };
  const dtype = dtypeFromCode(tt.elemType ?? 0, `${ctx.file}: value ${name}`);
  const shape: Dim[] | undefined = tt.shape
    ? (tt.shape.dim ?? []).map((d) => {
        const which = (d as { value?: string }).value;
        if (which === 'dimParam' || (which === undefined && d.dimParam)) return d.dimParam!;
        if (which === 'dimValue') return num(d.dimValue);
        return null;
      })
    : undefined;
  return shape ? { name, dtype, shape } : { name, dtype };
}

function nodeFromProto(n: O.INodeProto, index: number, ctx: LoadContext): Node {
  const attributes: Record<string, Attribute> = {};
  const name = n.name || `${n.opType}_${index}`;
  for (const a of n.attribute ?? []) attributes[a.name ?? ''] = attributeFromProto(a, `${ctx.file}: node ${name}`, ctx);
  const node: Node = { name, opType: n.opType ?? '', inputs: [...(n.input ?? [])], outputs: [...(n.output ?? [])], attributes };
  if (n.domain) node.domain = n.domain;
  return node;
}

function attributeFromProto(a: O.IAttributeProto, where: string, ctx: LoadContext): Attribute {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case T.INT:
      return { kind: 'int', value: num(a.i) };
    case T.FLOAT:
      return { kind: 'float', value: a.f ?? 0 };
    case T.STRING:
      return { kind: 'string', value: Buffer.from(a.s ?? new Uint8Array()).toString('utf8') };
    case T.INTS:
      return { kind: 'ints', value: (a.ints ?? []).map(num) };
    case T.FLOATS:
      return { kind: 'floats', value: [...(a.floats ?? [])] };
    case T.STRINGS:
      return { kind: 'strings', value: (a.strings ?? []).map((s) => Buffer.from(s).toString('utf8')) };
    case T.TENSOR:
      return { kind: 'tensor', value: tensorFromProto(a.t!, ctx) };
    default:
      return { kind: 'opaque', value: onnx.AttributeProto.toObject(a as O.AttributeProto) };
  }
}

export function tensorFromProto(t: O.ITensorProto, ctx: LoadContext): Tensor {
  const name = t.name ?? '';
  const where = `${ctx.file}: tensor ${name}`;
  const dtype = dtypeFromCode(t.dataType ?? 0, where);
  const dims = (t.dims ?? []).map(num);
  if (dims.some((d) => !Number.isSafeInteger(d) || d < 0)) throw new UserError(`${where}: invalid dims [${dims.join(',')}]`);
  const n = numel(dims);
  const nbytes = n * BYTES_PER_ELEMENT[dtype];
  let raw: Uint8Array | undefined;
  if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) raw = readExternal(t, nbytes, where, ctx);
  else if (t.rawData && t.rawData.length > 0) raw = t.rawData;
  const data = allocate(dtype, n);
  if (raw) {
    if (raw.length !== nbytes) throw new UserError(`${where}: holds ${raw.length} bytes, shape [${dims.join(',')}] of ${dtype} needs ${nbytes}`);
    // Copy: protobuf's slice may be unaligned for the typed array.
    new Uint8Array(data.buffer, data.byteOffset, nbytes).set(raw);
    return { dtype, dims, data };
  }
  const typed = typedFieldValues(t, dtype);
  if (typed.length !== n && !(n === 0 && typed.length === 0)) {
    throw new UserError(`${where}: holds ${typed.length} values, shape [${dims.join(',')}] needs ${n}`);
  }
  if (data instanceof BigInt64Array) typed.forEach((v, i) => (data[i] = BigInt(num(v))));
  else (data as Float32Array).set(typed.map(num));
  return { dtype, dims, data };
}

function typedFieldValues(t: O.ITensorProto, dtype: DType): unknown[] {
  switch (dtype) {
    case 'float32':
      return t.floatData ?? [];
    case 'float64':
      return t.doubleData ?? [];
    case 'int64':
      return t.int64Data ?? [];
    default:
      return t.int32Data ?? [];
  }
}

function readExternal(t: O.ITensorProto, nbytes: number, where: string, ctx: LoadContext): Uint8Array {
  const kv: Record<string, string> = {};
  for (const e of t.externalData ?? []) kv[e.key ?? ''] = e.value ?? '';
  const location = kv['location'];
  if (!location) throw new UserError(`${where}: external data without a location`);
  if (isAbsolute(location)) throw new UserError(`${where}: external data location "${location}" is absolute; only files inside the model's folder are read`);
  const target = resolve(ctx.dir, location);
  let real: string;
  try {
    real = realpathSync(target);
  } catch {
    throw new UserError(`${where}: external data file ${target} not found`);
  }
  const rel = relative(realpathSync(ctx.dir), real);
  if (rel.startsWith('..') || isAbsolute(rel)) throw new UserError(`${where}: external data location "${location}" leaves the model's folder; refused`);
  const offset = Number(kv['offset'] ?? 0);
  const length = kv['length'] !== undefined ? Number(kv['length']) : nbytes;
  const size = statSync(real).size;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new UserError(`${where}: external data range [${offset}, ${offset + length}) is outside ${location} (${size} bytes)`);
  }
  const buf = new Uint8Array(length);
  const fd = openSync(real, 'r');
  try {
    readSync(fd, buf, 0, length, offset);
  } finally {
    closeSync(fd);
  }
  return buf;
}

// ---- IR -> protobuf ----

export function encodeModel(model: Model): Uint8Array {
  const m = onnx.ModelProto.create({
    irVersion: model.irVersion,
    opsetImport: model.opsets.map((o) => ({ domain: o.domain, version: o.version })),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    graph: graphToProto(model.graph),
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(m).finish();
}

/**
 * Writes a model to an .onnx file atomically (a temporary file, then a rename).
 *
 * @example
 *   saveModel(createZooModel('lenet5'), 'lenet5.onnx');
 */
export function saveModel(model: Model, path: string): void {
  writeFileAtomic(path, encodeModel(model));
}

function graphToProto(g: Graph): O.IGraphProto {
  return onnx.GraphProto.create({
    name: g.name,
    node: g.nodes.map(nodeToProto),
    initializer: [...g.initializers].map(([name, t]) => tensorToProto(t, name)),
    input: g.inputs.map(valueInfoToProto),
    output: g.outputs.map(valueInfoToProto),
    valueInfo: [...g.valueInfo.values()].map(valueInfoToProto),
  });
}

function valueInfoToProto(v: ValueInfo): O.IValueInfoProto {
  const tensorType: Record<string, unknown> = { elemType: dtypeCode(v.dtype) };
  if (v.shape) {
    tensorType['shape'] = { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})) };
  }
  return onnx.ValueInfoProto.create({ name: v.name, type: { tensorType } });
}

function nodeToProto(n: Node): O.INodeProto {
  return onnx.NodeProto.create({
    name: n.name,
    opType: n.opType,
    domain: n.domain ?? '',
    input: n.inputs,
    output: n.outputs,
    attribute: Object.entries(n.attributes).map(([name, a]) => attributeToProto(name, a)),
  });
}

function attributeToProto(name: string, a: Attribute): O.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.kind) {
    case 'int':
      return onnx.AttributeProto.create({ name, type: T.INT, i: a.value });
    case 'float':
      return onnx.AttributeProto.create({ name, type: T.FLOAT, f: a.value });
    case 'string':
      return onnx.AttributeProto.create({ name, type: T.STRING, s: Buffer.from(a.value, 'utf8') });
    case 'ints':
      return onnx.AttributeProto.create({ name, type: T.INTS, ints: a.value });
    case 'floats':
      return onnx.AttributeProto.create({ name, type: T.FLOATS, floats: a.value });
    case 'strings':
      return onnx.AttributeProto.create({ name, type: T.STRINGS, strings: a.value.map((s) => Buffer.from(s, 'utf8')) });
    case 'tensor':
      return onnx.AttributeProto.create({ name, type: T.TENSOR, t: tensorToProto(a.value, '') });
    case 'opaque':
      return onnx.AttributeProto.fromObject(a.value as Record<string, unknown>);
  }
}

export function tensorToProto(t: Tensor, name: string): O.ITensorProto {
  const d: TensorData = t.data;
  return onnx.TensorProto.create({
    name,
    dataType: dtypeCode(t.dtype),
    dims: t.dims,
    rawData: new Uint8Array(d.buffer, d.byteOffset, d.byteLength),
  });
}
