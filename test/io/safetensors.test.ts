import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensors, openSafetensorsIndex, writeSafetensors } from '../../src/io/safetensors.js';
import type { Tensor } from '../../src/onnx/types.js';
import { floatToHalf, tensor } from '../../src/onnx/tensor.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';

/** A file laid out by hand as the format spec says: u64 LE length, JSON, data. */
function rawFile(header: unknown, data: number[] | Uint8Array, pad = true): Uint8Array {
  let json = typeof header === 'string' ? header : JSON.stringify(header);
  if (pad) json += ' '.repeat((8 - (json.length % 8)) % 8);
  const h = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + h.length + data.length);
  out.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(out, 8);
  out.set(data, 8 + h.length);
  return out;
}

const bytesOf = (...arrays: ArrayBufferView[]): number[] => arrays.flatMap((a) => [...new Uint8Array(a.buffer, a.byteOffset, a.byteLength)]);

const every: Record<string, Tensor> = {
  f32: tensor('float32', [2, 3], [1.5, -2, 0, 3.25, 1e-8, -1e20]),
  f64: tensor('float64', [3], [Math.PI, -1 / 3, 1e300]),
  f16: tensor('float16', [3], [floatToHalf(1), floatToHalf(-2.5), floatToHalf(65504)]),
  bf16: tensor('bfloat16', [2], [0x3f80, 0xc049]),
  i64: tensor('int64', [2], [-(2 ** 40), 7]),
  i32: tensor('int32', [2, 1], [-5, 2 ** 31 - 1]),
  i16: tensor('int16', [1], [-300]),
  i8: tensor('int8', [3], [-128, 0, 127]),
  u8: tensor('uint8', [4], [0, 1, 200, 255]),
  bool: tensor('bool', [2], [1, 0]),
  scalar: tensor('float32', [], [42]),
  empty: tensor('float32', [0, 5]),
};

test('every dtype round-trips through write and read, with metadata', () => {
  const path = join(tempDir(), 'all.safetensors');
  writeSafetensors(path, every, { format: 'pt', note: 'é ✓' });
  const f = openSafetensors(path);
  try {
    assert.deepEqual(f.metadata, { format: 'pt', note: 'é ✓' });
    assert.deepEqual(f.tensors.map((t) => t.name).sort(), Object.keys(every).sort());
    for (const [name, t] of Object.entries(every)) {
      const r = f.readTensor(name);
      assert.equal(r.dtype, t.dtype, name);
      assert.deepEqual(r.dims, t.dims, name);
      assert.deepEqual(r.data, t.data, name);
      assert.equal(f.info(name).byteSize, t.data.byteLength, name);
    }
    assert.equal(f.info('bf16').dtype, 'BF16');
    assert.equal(f.info('bool').dtype, 'BOOL');
  } finally {
    f.close();
  }
});

test('readFloat32 converts F16, BF16, F64 and integers to float32', () => {
  const path = join(tempDir(), 'conv.safetensors');
  writeSafetensors(path, every);
  const f = openSafetensors(path);
  assert.deepEqual([...f.readFloat32('f16')], [1, -2.5, 65504]);
  assert.deepEqual([...f.readFloat32('bf16')], [1, -3.140625]);
  assert.deepEqual(f.readFloat32('f64'), Float32Array.from([Math.PI, -1 / 3, 1e300]));
  assert.deepEqual([...f.readFloat32('i64')], [-(2 ** 40), 7]);
  assert.deepEqual([...f.readFloat32('i8')], [-128, 0, 127]);
  f.close();
  assert.throws(() => f.readTensor('f32'), /after close/);
});

test('readFloat32SliceInto reads part of a tensor, in every dtype, as readFloat32 gives it; a slice past the end is refused', () => {
  const path = join(tempDir(), 'slices.safetensors');
  writeSafetensors(path, every);
  const f = openSafetensors(path);
  try {
    for (const name of ['f32', 'f64', 'f16', 'bf16', 'i64', 'i8']) {
      const whole = f.readFloat32(name);
      for (let offset = 0; offset < whole.length; offset++)
        for (let count = 0; offset + count <= whole.length; count++) {
          const target = new Float32Array(count + 2).fill(7);
          f.readFloat32SliceInto(name, offset, target.subarray(1, 1 + count));
          assert.deepEqual([...target], [7, ...whole.subarray(offset, offset + count), 7], `${name} ${offset}+${count}`);
        }
    }
    assertUserError(() => f.readFloat32SliceInto('f32', 5, new Float32Array(2)), 'values 5 .. 7 of tensor "f32"', 'it holds 6');
    assertUserError(() => f.readFloat32SliceInto('f32', -1, new Float32Array(1)), 'tensor "f32"');
  } finally {
    f.close();
  }
});

test('the writer pads the header with spaces to 8 bytes and aligns every tensor to its item size', () => {
  const path = join(tempDir(), 'layout.safetensors');
  writeSafetensors(path, every, { a: 'b' });
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  const text = bytes.subarray(8, 8 + n).toString('utf8');
  assert.match(text, /^\{.*\} *$/);
  const header = JSON.parse(text) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const size: Record<string, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1 };
  const spans = Object.entries(header)
    .filter(([k]) => k !== '__metadata__')
    .map(([, v]) => v)
    .sort((a, b) => a.data_offsets[0] - b.data_offsets[0]);
  let end = 0;
  for (const s of spans) {
    assert.equal(s.data_offsets[0], end, 'no holes between tensors');
    assert.equal(s.data_offsets[0] % size[s.dtype]!, 0, `${s.dtype} aligned`);
    end = s.data_offsets[1];
  }
  assert.equal(8 + n + end, bytes.length, 'data buffer ends the file');
});

test('the same tensors give the same bytes whatever their order; a Map is accepted too', () => {
  const dir = tempDir();
  writeSafetensors(join(dir, 'a.safetensors'), every);
  writeSafetensors(join(dir, 'b.safetensors'), new Map(Object.entries(every).reverse()));
  assert.deepEqual(readFileSync(join(dir, 'a.safetensors')), readFileSync(join(dir, 'b.safetensors')));
  assert.deepEqual(readdirSync(dir).sort(), ['a.safetensors', 'b.safetensors'], 'no temp files left');
});

test('a file laid out by hand per the format spec (as Python safetensors writes it) is read', () => {
  const f32 = Float32Array.from([1.5, -2]);
  const f16 = Uint16Array.from([0x3c00, 0xc000]);
  const bf16 = Uint16Array.from([0x3f80, 0x4049]);
  const header = {
    __metadata__: { format: 'pt' },
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F16', shape: [2, 1], data_offsets: [8, 12] },
    c: { dtype: 'BF16', shape: [1, 2], data_offsets: [12, 16] },
  };
  const path = join(tempDir(), 'python.safetensors');
  writeFileSync(path, rawFile(header, bytesOf(f32, f16, bf16)));
  const f = openSafetensors(path);
  assert.deepEqual(f.metadata, { format: 'pt' });
  assert.deepEqual(f.tensors, [
    { name: 'a', dtype: 'F32', shape: [2], byteSize: 8 },
    { name: 'b', dtype: 'F16', shape: [2, 1], byteSize: 4 },
    { name: 'c', dtype: 'BF16', shape: [1, 2], byteSize: 4 },
  ]);
  assert.deepEqual([...f.readFloat32('a')], [1.5, -2]);
  assert.deepEqual([...f.readFloat32('b')], [1, -2]);
  assert.deepEqual([...f.readFloat32('c')], [1, 3.140625]);
  assert.deepEqual(f.readTensor('b'), { dtype: 'float16', dims: [2, 1], data: f16 });
  f.close();
});

test('holes and any tensor order are accepted (not every writer packs the buffer)', () => {
  const header = {
    late: { dtype: 'U8', shape: [2], data_offsets: [6, 8] },
    early: { dtype: 'U8', shape: [2], data_offsets: [0, 2] },
  };
  const path = join(tempDir(), 'holes.safetensors');
  writeFileSync(path, rawFile(header, [1, 2, 0, 0, 0, 0, 3, 4]));
  const f = openSafetensors(path);
  assert.deepEqual([...f.readTensor('late').data], [3, 4]);
  assert.deepEqual([...f.readTensor('early').data], [1, 2]);
  f.close();
});

test('malformed files are refused with a message naming the file and the problem', () => {
  const dir = tempDir();
  const put = (name: string, bytes: Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  const u8 = (shape: number[], offsets: number[]): unknown => ({ dtype: 'U8', shape, data_offsets: offsets });

  let p = put('short.safetensors', Uint8Array.from([1, 2, 3]));
  assertUserError(() => openSafetensors(p), p, 'too short');

  const long = rawFile({ a: u8([4], [0, 4]) }, [1, 2, 3, 4]);
  p = put('truncated-header.safetensors', long.subarray(0, 20));
  assertUserError(() => openSafetensors(p), p, 'runs past the end');

  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(2n ** 62n, 0);
  p = put('huge.safetensors', huge);
  assertUserError(() => openSafetensors(p), p, 'over the');

  p = put('text.safetensors', rawFile('this is not json at all', []));
  assertUserError(() => openSafetensors(p), p, 'not valid UTF-8 JSON');

  p = put('array.safetensors', rawFile([1, 2], []));
  assertUserError(() => openSafetensors(p), p, 'JSON object');

  p = put('outside.safetensors', rawFile({ a: u8([8], [0, 8]) }, [1, 2, 3, 4]));
  assertUserError(() => openSafetensors(p), p, '"a"', 'outside', 'truncated');

  p = put('reversed.safetensors', rawFile({ a: u8([0], [4, 2]) }, [1, 2, 3, 4]));
  assertUserError(() => openSafetensors(p), '"a"', 'outside');

  p = put('overlap.safetensors', rawFile({ a: u8([3], [0, 3]), b: u8([2], [2, 4]) }, [1, 2, 3, 4]));
  assertUserError(() => openSafetensors(p), p, '"a"', '"b"', 'overlap');

  p = put('size.safetensors', rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, [1, 2, 3, 4]));
  assertUserError(() => openSafetensors(p), p, '"a"', 'needs 8');

  p = put('dtype.safetensors', rawFile({ w: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, [1, 2, 3, 4]));
  assertUserError(() => openSafetensors(p), p, '"w"', 'F8_E4M3', 'not supported');

  p = put('shape.safetensors', rawFile({ a: u8([-1], [0, 4]) }, [1, 2, 3, 4]));
  assertUserError(() => openSafetensors(p), '"a"', 'non-negative integers');

  p = put('fraction.safetensors', rawFile({ a: u8([2.5], [0, 4]) }, [1, 2, 3, 4]));
  assertUserError(() => openSafetensors(p), '"a"', 'non-negative integers');

  p = put('offsets.safetensors', rawFile({ a: { dtype: 'U8', shape: [4], data_offsets: [0] } }, [1, 2, 3, 4]));
  assertUserError(() => openSafetensors(p), '"a"', 'data_offsets');

  p = put('meta.safetensors', rawFile({ __metadata__: { epoch: 3 } }, []));
  assertUserError(() => openSafetensors(p), '__metadata__', 'epoch', 'string');

  assertUserError(() => openSafetensors(join(dir, 'missing.safetensors')), 'missing.safetensors', 'ENOENT');
  assertUserError(() => openSafetensors(dir), 'not a file');
});

test('an unknown tensor name is a clear error', () => {
  const path = join(tempDir(), 'x.safetensors');
  writeSafetensors(path, { a: every['u8']! });
  const f = openSafetensors(path);
  assertUserError(() => f.readTensor('nope'), 'no tensor named "nope"');
  f.close();
});

test('the writer refuses duplicate names, the reserved name and data of the wrong size', () => {
  const dir = tempDir();
  const t = every['u8']!;
  assertUserError(
    () =>
      writeSafetensors(join(dir, 'a'), [
        ['x', t],
        ['x', t],
      ]),
    '"x"',
    'twice',
  );
  assertUserError(() => writeSafetensors(join(dir, 'b'), { __metadata__: t }), 'reserved');
  assertUserError(() => writeSafetensors(join(dir, 'c'), { x: { dtype: 'float32', dims: [3], data: new Float32Array(2) } }), '"x"', 'expected 3');
  assertUserError(() => writeSafetensors(join(dir, 'd'), { x: { dtype: 'float16', dims: [2], data: new Float32Array(2) } }), '"x"', 'Float32Array');
  assert.deepEqual(readdirSync(dir), [], 'nothing written');
});

function writeShards(dir: string): void {
  writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { 'a.weight': every['f32']!, 'a.bias': every['f16']! });
  writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), { 'b.weight': every['bf16']! });
}

function writeIndex(dir: string, weightMap: Record<string, string>): string {
  const p = join(dir, 'model.safetensors.index.json');
  writeFileSync(p, JSON.stringify({ metadata: { total_size: 34 }, weight_map: weightMap }));
  return p;
}

test('a sharded checkpoint reads through its index like one file', () => {
  const dir = tempDir();
  writeShards(dir);
  const f = openSafetensorsIndex(
    writeIndex(dir, {
      'a.weight': 'model-00001-of-00002.safetensors',
      'a.bias': 'model-00001-of-00002.safetensors',
      'b.weight': 'model-00002-of-00002.safetensors',
    }),
  );
  assert.deepEqual(f.metadata, { total_size: '34' });
  assert.deepEqual(
    f.tensors.map((t) => [t.name, t.dtype]),
    [
      ['a.weight', 'F32'],
      ['a.bias', 'F16'],
      ['b.weight', 'BF16'],
    ],
  );
  assert.deepEqual(f.readTensor('a.weight').data, every['f32']!.data);
  assert.deepEqual([...f.readFloat32('b.weight')], [1, -3.140625]);
  const part = new Float32Array(1);
  f.readFloat32SliceInto('b.weight', 1, part);
  assert.deepEqual([...part], [-3.140625], 'slices read through the index too');
  assert.equal(f.has('c'), false);
  assertUserError(() => f.readTensor('c'), '"c"');
  f.close();
});

test('shard names that leave the index folder are refused', () => {
  const root = tempDir();
  const dir = join(root, 'ckpt');
  mkdirSync(dir);
  writeShards(root);
  writeShards(dir);
  const outside = join(root, 'model-00002-of-00002.safetensors');
  assertUserError(() => openSafetensorsIndex(writeIndex(dir, { 'b.weight': '../model-00002-of-00002.safetensors' })), '..', 'inside');
  assertUserError(() => openSafetensorsIndex(writeIndex(dir, { 'b.weight': outside })), 'absolute');
  assertUserError(() => openSafetensorsIndex(writeIndex(dir, { 'b.weight': 'sub\\..\\..\\x.safetensors' })), '..');
  symlinkSync(outside, join(dir, 'link.safetensors'));
  assertUserError(() => openSafetensorsIndex(writeIndex(dir, { 'b.weight': 'link.safetensors' })), 'outside the index', 'symlink');
  assertUserError(() => openSafetensorsIndex(writeIndex(dir, { 'b.weight': 'nope.safetensors' })), 'not found');
  assertUserError(() => openSafetensorsIndex(writeIndex(dir, { z: 'model-00002-of-00002.safetensors' })), '"z"', 'no such tensor');
  const bad = join(dir, 'bad.index.json');
  writeFileSync(bad, '{"weight_map": 3}');
  assertUserError(() => openSafetensorsIndex(bad), 'weight_map');
  writeFileSync(bad, 'nope');
  assertUserError(() => openSafetensorsIndex(bad), 'not valid JSON');
});
