/**
 * The safetensors container (Hugging Face): an 8-byte little-endian header length N,
 * N bytes of JSON header, then the data buffer that the header's data_offsets point
 * into. This module only knows the format: the dtype table and the validation of a
 * header against the size of the file it came from. Files are untrusted input, so
 * every field is checked before anything is allocated from it.
 */
import type { DType } from '../onnx/types.js';
import { BYTES_PER_ELEMENT } from '../onnx/tensor.js';
import { UserError } from '../util/errors.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const TO_IR: Record<SafetensorsDType, DType> = {
  F64: 'float64',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int64',
  I32: 'int32',
  I16: 'int16',
  I8: 'int8',
  U8: 'uint8',
  BOOL: 'bool',
};
const FROM_IR = Object.fromEntries(Object.entries(TO_IR).map(([k, v]) => [v, k])) as Record<DType, SafetensorsDType>;

export const irDType = (d: SafetensorsDType): DType => TO_IR[d];
export const safetensorsDType = (d: DType): SafetensorsDType => FROM_IR[d];
export const itemSize = (d: SafetensorsDType): number => BYTES_PER_ELEMENT[TO_IR[d]];
const isKnownDType = (d: unknown): d is SafetensorsDType => typeof d === 'string' && Object.hasOwn(TO_IR, d);

/** The key the format reserves for free-form string metadata. */
export const METADATA_KEY = '__metadata__';
/** Headers beyond this are refused before being read (the reference implementation's own limit). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** bytes in the file: numel x item size */
  byteSize: number;
}

/** A tensor's place in its file: `offset` is absolute (from the start of the file). */
export interface TensorEntry extends TensorInfo {
  offset: number;
}

export interface Header {
  metadata: Record<string, string>;
  /** in header order */
  entries: TensorEntry[];
}

/**
 * Reads the header length from the first 8 bytes and checks it against the file size,
 * so that a truncated or foreign file fails before a large allocation.
 */
export function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8 || prefix.length < 8) throw new UserError(`${file}: ${fileSize} bytes is too short for a safetensors file (needs an 8-byte header length)`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new UserError(`${file}: header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit: not a safetensors file?`);
  if (n > BigInt(fileSize - 8))
    throw new UserError(`${file}: header length ${n} runs past the end of the ${fileSize}-byte file: truncated or not a safetensors file`);
  return Number(n);
}

/** Parses and validates the JSON header. `dataStart` = 8 + header length. */
export function parseHeader(json: Uint8Array, dataStart: number, fileSize: number, file: string): Header {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    throw new UserError(`${file}: header is not valid UTF-8 JSON (${(e as Error).message}): not a safetensors file?`);
  }
  if (!isPlainObject(raw)) throw new UserError(`${file}: header must be a JSON object of tensors`);
  const metadata = parseMetadata(raw[METADATA_KEY], file);
  const bufferSize = fileSize - dataStart;
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(raw)) {
    if (name === METADATA_KEY) continue;
    entries.push(parseEntry(name, value, dataStart, bufferSize, file));
  }
  checkNoOverlap(entries, dataStart, file);
  return { metadata, entries };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw new UserError(`${file}: "${METADATA_KEY}" must be an object of strings`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new UserError(`${file}: "${METADATA_KEY}" value for "${k}" must be a string, got ${typeof v}`);
  }
  return { ...(value as Record<string, string>) };
}

function parseEntry(name: string, value: unknown, dataStart: number, bufferSize: number, file: string): TensorEntry {
  const where = `${file}: tensor "${name}"`;
  if (!isPlainObject(value)) throw new UserError(`${where}: expected an object with dtype, shape and data_offsets`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isKnownDType(dtype)) {
    throw new UserError(`${where}: dtype ${JSON.stringify(dtype)} is not supported (supported: ${Object.keys(TO_IR).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isCount)) throw new UserError(`${where}: shape ${JSON.stringify(shape)} must be a list of non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw new UserError(`${where}: data_offsets ${JSON.stringify(offsets)} must be [begin, end] non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > bufferSize) {
    throw new UserError(`${where}: data_offsets [${begin}, ${end}] lie outside the ${bufferSize}-byte data buffer: truncated file?`);
  }
  const byteSize = byteSizeOf(shape as number[], dtype, where);
  if (end - begin !== byteSize) {
    throw new UserError(`${where}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, but ${dtype} of shape [${shape.join(', ')}] needs ${byteSize}`);
  }
  return { name, dtype, shape: [...(shape as number[])], byteSize, offset: dataStart + begin };
}

function byteSizeOf(shape: number[], dtype: SafetensorsDType, where: string): number {
  let n = itemSize(dtype);
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw new UserError(`${where}: shape [${shape.join(', ')}] is too large`);
  }
  return n;
}

/** Writers may leave holes or order tensors freely, but two tensors never share bytes. */
function checkNoOverlap(entries: TensorEntry[], dataStart: number, file: string): void {
  const sorted = entries.filter((e) => e.byteSize > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.offset < prev.offset + prev.byteSize) {
      const span = (e: TensorEntry): string => `[${e.offset - dataStart}, ${e.offset - dataStart + e.byteSize}]`;
      throw new UserError(`${file}: tensors "${prev.name}" ${span(prev)} and "${cur.name}" ${span(cur)} overlap in the data buffer`);
    }
  }
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
