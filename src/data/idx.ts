/**
 * IDX files (the MNIST / Fashion-MNIST format): a 4-byte magic (0, 0, data type, rank),
 * rank big-endian uint32 sizes, then the data. Only unsigned bytes are supported,
 * which is what every image/label IDX file in use holds. Files may be gzipped; that
 * is told by the gzip magic, not the file name.
 */
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { UserError } from '../util/errors.js';

const gunzipAsync = promisify(gunzip);

const UBYTE = 0x08;
const TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte', 0x09: 'signed byte', 0x0b: 'int16', 0x0c: 'int32', 0x0d: 'float32', 0x0e: 'float64',
};

export interface IdxArray {
  dims: number[];
  /** the elements, row-major */
  data: Uint8Array;
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads and validates an IDX file (raw or gzipped); errors name the file. */
export async function readIdx(file: string): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new UserError(`${file}: cannot read IDX file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (isGzip(bytes)) {
    try {
      bytes = await gunzipAsync(bytes);
    } catch (e) {
      throw new UserError(`${file}: corrupt or truncated gzip data (${(e as Error).message})`);
    }
  }
  return decodeIdx(bytes, file);
}

/** Parses an uncompressed IDX buffer; `file` names it in errors. */
export function decodeIdx(bytes: Uint8Array, file: string): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    const first = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new UserError(`${file}: not an IDX file (starts with bytes "${first}", expected 00 00 <type> <rank>)`);
  }
  const type = bytes[2]!;
  if (type !== UBYTE) {
    const name = TYPE_NAMES[type] ?? 'unknown';
    throw new UserError(`${file}: IDX data type 0x${type.toString(16).padStart(2, '0')} (${name}) is not supported; expected 0x08 (unsigned byte)`);
  }
  const rank = bytes[3]!;
  if (rank < 1) throw new UserError(`${file}: IDX rank is 0; expected at least 1 dimension`);
  const header = 4 + 4 * rank;
  if (bytes.length < header) {
    throw new UserError(`${file}: truncated IDX file: ${bytes.length} bytes, shorter than its ${header}-byte header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, d) => a * d, 1);
  const expected = header + count;
  if (bytes.length !== expected) {
    const what = bytes.length < expected ? 'truncated IDX file' : 'IDX file has trailing data';
    throw new UserError(`${file}: ${what}: header says ${dims.join('x')} (${expected} bytes in all) but it has ${bytes.length} bytes`);
  }
  return { dims, data: bytes.subarray(header) };
}

/** Encodes an unsigned-byte IDX buffer (uncompressed); for tests and tools. */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const count = dims.reduce((a, d) => a * d, 1);
  if (count !== data.length) throw new RangeError(`encodeIdx: ${data.length} elements for dims ${dims.join('x')}`);
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = UBYTE;
  out[3] = dims.length;
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, 4 + 4 * dims.length);
  return out;
}
