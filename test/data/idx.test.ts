import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readIdx, decodeIdx, encodeIdx } from '../../src/data/idx.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir();
const pixels = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 37) % 256);

test('IDX round trip, raw and gzipped', async () => {
  const bytes = encodeIdx([2, 3, 4], pixels);
  writeFileSync(join(dir, 'raw-idx3-ubyte'), bytes);
  // gzip is told by content, not name: this .bin file is gzipped
  writeFileSync(join(dir, 'packed.bin'), gzipSync(bytes));
  for (const f of ['raw-idx3-ubyte', 'packed.bin']) {
    const a = await readIdx(join(dir, f));
    assert.deepEqual(a.dims, [2, 3, 4]);
    assert.deepEqual(Array.from(a.data), Array.from(pixels));
  }
});

test('IDX header is big-endian with the ubyte type code', () => {
  const b = encodeIdx([258], new Uint8Array(258));
  assert.deepEqual(Array.from(b.subarray(0, 8)), [0, 0, 0x08, 1, 0, 0, 1, 2]);
});

async function rejectsNaming(file: string, pattern: RegExp): Promise<void> {
  await assert.rejects(readIdx(file), (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.ok(e.message.includes(file), e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

test('corrupt magic, wrong type, truncation and trailing data name the file', async () => {
  const good = encodeIdx([2, 3, 4], pixels);
  const cases: [string, Uint8Array, RegExp][] = [
    ['magic', Uint8Array.from([1, 2, ...good.subarray(2)]), /not an IDX file/],
    ['float', Uint8Array.from([0, 0, 0x0d, ...good.subarray(3)]), /float32.*not supported/],
    ['short', good.subarray(0, good.length - 5), /truncated/],
    ['header', good.subarray(0, 9), /truncated/],
    ['long', Uint8Array.from([...good, 7]), /trailing data/],
  ];
  for (const [name, bytes, pattern] of cases) {
    const f = join(dir, `${name}-idx3-ubyte`);
    writeFileSync(f, bytes);
    await rejectsNaming(f, pattern);
  }
  const gz = gzipSync(good);
  const f = join(dir, 'cut.gz');
  writeFileSync(f, gz.subarray(0, gz.length - 10));
  await rejectsNaming(f, /gzip/);
  await rejectsNaming(join(dir, 'absent-idx1-ubyte'), /ENOENT/);
});

test('decodeIdx returns a view, not a copy, of the element bytes', () => {
  const bytes = encodeIdx([3], Uint8Array.from([5, 6, 7]));
  const a = decodeIdx(bytes, 'mem');
  assert.equal(a.data.buffer, bytes.buffer);
  assert.deepEqual(Array.from(a.data), [5, 6, 7]);
});
