import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { tensor } from '../../src/onnx/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { Rng } from '../../src/util/random.js';
import { tempDir } from '../helpers/paths.js';

/** Opens a file and reads every tensor; returns 'ok' or 'refused', rethrows anything that is not a UserError. */
function readAll(path: string): 'ok' | 'refused' {
  try {
    const f = openSafetensors(path);
    try {
      for (const t of f.tensors) {
        const v = f.readFloat32(t.name);
        assert.equal(
          v.length,
          t.shape.reduce((a, b) => a * b, 1),
        );
      }
    } finally {
      f.close();
    }
    return 'ok';
  } catch (e) {
    if (e instanceof UserError) return 'refused';
    throw new Error(`not a UserError: ${(e as Error)?.stack ?? e}`, { cause: e });
  }
}

/** Edits of the JSON text that keep it plausible, so they reach the field checks behind the parser. */
const HEADER_EDITS: ((h: string, rng: Rng) => string)[] = [
  (h, r) => h.replace(/\d+/g, (d) => (r.next() < 0.15 ? String(Number(d) + r.int(9) - 4) : d)),
  (h, r) => h.replace(/\d+/g, (d) => (r.next() < 0.1 ? ['-1', '1e300', '0', '18446744073709551616', '2.5', 'null', '"7"'][r.int(7)]! : d)),
  (h, r) => h.replace(/"(F32|F16|BF16|F64|I8|U8)"/g, (d) => (r.next() < 0.3 ? ['"F8_E4M3"', '"f32"', '""', '7', '"BOOL"', '"I64"'][r.int(6)]! : d)),
  (h, r) =>
    h.replace(/"shape":\[[^\]]*\]/g, (d) =>
      r.next() < 0.3 ? ['"shape":[]', '"shape":[1e9,1e9]', '"shape":"x"', '"shape":[2,-3]', '"shape":[0]'][r.int(5)]! : d,
    ),
  (h, r) => h.replace(/"data_offsets":\[(\d+),(\d+)\]/g, (d, a: string, b: string) => (r.next() < 0.4 ? `"data_offsets":[${b},${a}]` : d)),
  (h, r) => {
    const i = r.int(h.length);
    return h.slice(0, i) + h.slice(i + 1 + r.int(4));
  },
  (h, r) => {
    const i = r.int(h.length);
    return h.slice(0, i) + ['{', '}', '[', '"', ',', ':', '\\', '\u00ff'][r.int(8)]! + h.slice(i);
  },
  (h) => h.replace('"__metadata__":{', '"__metadata__":{"x":1,'),
];

function mutate(valid: Uint8Array, headerLen: number, rng: Rng): Uint8Array {
  const kind = rng.int(5);
  if (kind === 0) {
    // byte flips, biased towards the length prefix and the header
    const out = Uint8Array.from(valid);
    const flips = 1 + rng.int(4);
    for (let k = 0; k < flips; k++) {
      const i = rng.next() < 0.7 ? rng.int(8 + headerLen) : rng.int(out.length);
      out[i] = out[i]! ^ (1 << rng.int(8));
    }
    return out;
  }
  if (kind === 1) return valid.slice(0, rng.int(valid.length)); // truncation
  if (kind === 2) {
    // header length edits
    const out = Uint8Array.from(valid);
    const dv = new DataView(out.buffer);
    const choices = [0n, 1n, BigInt(headerLen - 1), BigInt(headerLen + 1), BigInt(valid.length), 2n ** 63n, BigInt(100_000_001), BigInt(rng.nextU32())];
    dv.setBigUint64(0, choices[rng.int(choices.length)]!, true);
    return out;
  }
  // header text edits, the length prefix rewritten to match (or not)
  const json = new TextDecoder().decode(valid.subarray(8, 8 + headerLen));
  let edited = json;
  const edits = 1 + rng.int(2);
  for (let k = 0; k < edits; k++) edited = HEADER_EDITS[rng.int(HEADER_EDITS.length)]!(edited, rng);
  const h = new TextEncoder().encode(edited);
  const data = valid.subarray(8 + headerLen);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(kind === 4 && rng.next() < 0.3 ? headerLen : h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

test('two thousand seeded random mutations of a valid file: each either reads or is refused with a UserError', () => {
  const dir = tempDir();
  const src = join(dir, 'valid.safetensors');
  writeSafetensors(
    src,
    {
      'a.weight': tensor(
        'float32',
        [4, 4],
        Array.from({ length: 16 }, (_, i) => i / 3),
      ),
      'a.bias': tensor('float16', [4], [0x3c00, 0, 0xbc00, 0x4000]),
      'b.weight': tensor('bfloat16', [2, 3], [0x3f80, 1, 2, 3, 4, 5]),
      'c.idx': tensor('int64', [2], [1, -1]),
      'd.u8': tensor('uint8', [5], [1, 2, 3, 4, 5]),
      'e.f64': tensor('float64', [2], [Math.PI, 1]),
    },
    { note: 'fuzz' },
  );
  const valid = new Uint8Array(readFileSync(src));
  const headerLen = Number(new DataView(valid.buffer, valid.byteOffset).getBigUint64(0, true));
  assert.equal(readAll(src), 'ok');
  const rng = new Rng(20261123);
  const counts = { ok: 0, refused: 0 };
  const start = performance.now();
  const N = 2000;
  const p = join(dir, 'm.safetensors');
  for (let i = 0; i < N; i++) {
    writeFileSync(p, mutate(valid, headerLen, rng));
    counts[readAll(p)]++;
  }
  const seconds = (performance.now() - start) / 1000;
  assert.ok(seconds < 10, `took ${seconds.toFixed(1)} s`);
  // the mutations must exercise both outcomes, mostly refusals
  assert.ok(counts.refused > N / 2, JSON.stringify(counts));
  assert.ok(counts.ok > 20, JSON.stringify(counts));
  console.log(`fuzz: ${N} mutations, ${counts.ok} read, ${counts.refused} refused, ${seconds.toFixed(1)} s`);
});
