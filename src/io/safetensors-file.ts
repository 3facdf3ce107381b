/**
 * Reading one .safetensors file: the header is read and validated on open; tensors are
 * read one at a time with positioned reads, so memory holds one tensor, never the file.
 */
import { closeSync, fstatSync } from 'node:fs';
import { endianness } from 'node:os';
import type { Tensor } from '../onnx/types.js';
import { allocate, numel } from '../onnx/tensor.js';
import { UserError } from '../util/errors.js';
import { headerLength, irDType, parseHeader, type TensorEntry, type TensorInfo } from './safetensors-format.js';
import { openRegularFile, readFully } from './positioned.js';
import { tensorToFloat32 } from './to-float32.js';

/** A set of named tensors stored on disk: one file, or a sharded checkpoint's shards. */
export interface SafetensorsFile {
  readonly path: string;
  /** the `__metadata__` strings (for an index: its "metadata", values as strings) */
  readonly metadata: Readonly<Record<string, string>>;
  /** every tensor, in header order */
  readonly tensors: readonly TensorInfo[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** one tensor in its stored dtype (F16/BF16 as raw 16-bit words, as the IR keeps them) */
  readTensor(name: string): Tensor;
  /** one tensor's values as float32, whatever its stored dtype */
  readFloat32(name: string): Float32Array;
  /** the same values written into `target`, which must hold exactly as many; float32 storage is read straight into it */
  readFloat32Into(name: string, target: Float32Array): void;
  /** values offset .. offset + target.length of the tensor (flattened) written into `target`, as float32; only those bytes are read */
  readFloat32SliceInto(name: string, offset: number, target: Float32Array): void;
  close(): void;
}

export function openSafetensors(path: string): SafetensorsFile {
  // Raw little-endian data is read straight into typed arrays.
  if (endianness() !== 'LE') throw new Error('reading safetensors needs a little-endian machine');
  const fd = openRegularFile(path, 'safetensors file');
  try {
    const size = fstatSync(fd).size;
    const prefix = new Uint8Array(8);
    if (size >= 8) readFully(fd, prefix, 0, path);
    const n = headerLength(prefix, size, path);
    const json = new Uint8Array(n);
    readFully(fd, json, 8, path);
    const header = parseHeader(json, 8 + n, size, path);
    return new SingleFile(path, fd, header.metadata, header.entries);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

class SingleFile implements SafetensorsFile {
  readonly tensors: readonly TensorInfo[];
  private readonly byName: Map<string, TensorEntry>;
  private fd: number | undefined;

  constructor(
    readonly path: string,
    fd: number,
    readonly metadata: Readonly<Record<string, string>>,
    entries: TensorEntry[],
  ) {
    this.fd = fd;
    this.byName = new Map(entries.map((e) => [e.name, e]));
    this.tensors = entries.map(({ name, dtype, shape, byteSize }) => ({ name, dtype, shape: [...shape], byteSize }));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const { offset: _, ...info } = this.entry(name);
    return { ...info, shape: [...info.shape] };
  }

  readTensor(name: string): Tensor {
    const e = this.entry(name);
    if (this.fd === undefined) throw new Error(`${this.path}: read after close()`);
    const dtype = irDType(e.dtype);
    const data = allocate(dtype, numel(e.shape));
    readFully(this.fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), e.offset, this.path);
    return { dtype, dims: [...e.shape], data };
  }

  readFloat32(name: string): Float32Array {
    return tensorToFloat32(this.readTensor(name));
  }

  readFloat32Into(name: string, target: Float32Array): void {
    const e = this.entry(name);
    const count = numel(e.shape);
    if (count !== target.length) throw new UserError(`${this.path}: tensor "${name}" holds ${count} values, expected ${target.length}`);
    this.readFloat32SliceInto(name, 0, target);
  }

  readFloat32SliceInto(name: string, offset: number, target: Float32Array): void {
    const e = this.entry(name);
    const count = numel(e.shape);
    if (!(Number.isInteger(offset) && offset >= 0 && offset + target.length <= count))
      throw new UserError(`${this.path}: values ${offset} .. ${offset + target.length} of tensor "${name}" asked for, it holds ${count}`);
    if (this.fd === undefined) throw new Error(`${this.path}: read after close()`);
    const dtype = irDType(e.dtype);
    if (dtype === 'float32') {
      readFully(this.fd, new Uint8Array(target.buffer, target.byteOffset, target.byteLength), e.offset + 4 * offset, this.path);
      return;
    }
    const data = allocate(dtype, target.length);
    readFully(this.fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), e.offset + data.BYTES_PER_ELEMENT * offset, this.path);
    target.set(tensorToFloat32({ dtype, dims: [target.length], data }));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private entry(name: string): TensorEntry {
    const e = this.byName.get(name);
    if (!e) throw new UserError(`${this.path}: no tensor named "${name}"`);
    return e;
  }
}
