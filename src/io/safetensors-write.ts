/**
 * Writing .safetensors files as the reference implementation does: the header padded
 * with spaces to a multiple of 8 bytes, tensors laid out back to back without holes,
 * larger item sizes first and names sorted within a size, so that every tensor starts
 * aligned to its item size (readers that map the file need it) and the same tensors
 * always give the same bytes. Data is streamed from the tensors' own memory.
 */
import type { Tensor } from '../onnx/types.js';
import { allocate, numel } from '../onnx/tensor.js';
import { UserError } from '../util/errors.js';
import { writeStreamAtomic } from './atomic-stream.js';
import { METADATA_KEY, itemSize, safetensorsDType } from './safetensors-format.js';

export type NamedTensors = Record<string, Tensor> | Iterable<readonly [string, Tensor]>;

export function writeSafetensors(path: string, tensors: NamedTensors, metadata?: Record<string, string>): void {
  const items = collect(tensors);
  const header = encodeHeader(items, metadata);
  writeStreamAtomic(path, (write) => {
    write(header);
    for (const [, t] of items) write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  });
}

function collect(tensors: NamedTensors): [string, Tensor][] {
  const entries = isIterable(tensors) ? [...tensors] : Object.entries(tensors);
  const seen = new Set<string>();
  for (const [name, t] of entries) {
    if (name === METADATA_KEY) throw new UserError(`safetensors: "${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (seen.has(name)) throw new UserError(`safetensors: tensor "${name}" is given twice`);
    seen.add(name);
    checkTensor(name, t);
  }
  const size = (t: Tensor): number => itemSize(safetensorsDType(t.dtype));
  return entries.map(([n, t]): [string, Tensor] => [n, t]).sort(([an, at], [bn, bt]) => size(bt) - size(at) || (an < bn ? -1 : an > bn ? 1 : 0));
}

function checkTensor(name: string, t: Tensor): void {
  if (!t.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new UserError(`safetensors: tensor "${name}" has shape [${t.dims.join(', ')}]; expected non-negative integers`);
  }
  const storage = allocate(t.dtype, 0).constructor as new () => unknown;
  if (!(t.data instanceof storage) || t.data.length !== numel(t.dims)) {
    throw new UserError(
      `safetensors: tensor "${name}" (${t.dtype} [${t.dims.join(', ')}]) holds ${t.data.length} values in a ${t.data.constructor.name}; expected ${numel(t.dims)}`,
    );
  }
}

/** The 8-byte length followed by the padded JSON header. */
function encodeHeader(items: [string, Tensor][], metadata: Record<string, string> | undefined): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header[METADATA_KEY] = checkMetadata(metadata);
  let offset = 0;
  for (const [name, t] of items) {
    const end = offset + t.data.byteLength;
    header[name] = { dtype: safetensorsDType(t.dtype), shape: t.dims, data_offsets: [offset, end] };
    offset = end;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

function checkMetadata(metadata: Record<string, string>): Record<string, string> {
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== 'string') throw new UserError(`safetensors: metadata "${k}" must be a string, got ${typeof v}`);
  }
  return metadata;
}

function isIterable(v: NamedTensors): v is Iterable<readonly [string, Tensor]> {
  return typeof (v as Partial<Iterable<unknown>>)[Symbol.iterator] === 'function';
}
