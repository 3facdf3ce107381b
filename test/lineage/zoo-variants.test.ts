import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { makeLineageZoo } from '../../src/lineage/zoo/make.js';
import { makeZooVariant, pruneL1, quantizeInt8 } from '../../src/lineage/zoo/variants.js';
import { openSafetensors } from '../../src/io/safetensors.js';
import { floatToHalf, halfToFloat } from '../../src/onnx/tensor.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';

test('int8 quantisation and pruning on known arrays', () => {
  const q = quantizeInt8(Float32Array.from([0.5, -1.27, 0.004, 0.006, 1]));
  assert.ok(Math.abs(q.scale - 0.01) < 1e-9);
  assert.deepEqual(
    [...q.values].map((v) => Math.round(v / q.scale)),
    [50, -127, 0, 1, 100],
  );
  assert.deepEqual([...quantizeInt8(new Float32Array(3)).values], [0, 0, 0]);
  assert.deepEqual([...pruneL1(Float32Array.from([0.3, -0.1, 0.05, -0.4, 0.2]), 0.4)], [Math.fround(0.3), 0, 0, Math.fround(-0.4), Math.fround(0.2)]);
  // ties broken by position, exactly floor(f * n) zeroed
  assert.deepEqual([...pruneL1(Float32Array.from([1, -1, 1, -1]), 0.5)], [0, 0, 1, -1]);
});

test('fp16, int8 and pruned copies of a zoo have the properties claimed and the same truth', async () => {
  const root = tempDir();
  const dir = join(root, 'zoo');
  await makeLineageZoo({
    data: 'fashion-mnist-sample',
    outDir: dir,
    trees: 1,
    children: 2,
    depth: 1,
    hidden: [24, 24],
    steps: 10,
    rootSteps: 20,
    batchSize: 64,
    seed: 9,
    threads: 1,
    variants: ['fp16', 'int8', 'pruned'],
    pruneFraction: 0.3,
  });
  const truth = readFileSync(join(dir, 'truth.json'), 'utf8');
  const names = readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  assert.equal(names.length, 3);
  for (const kind of ['fp16', 'int8', 'pruned']) {
    const vdir = `${dir}-${kind}`;
    assert.equal(readFileSync(join(vdir, 'truth.json'), 'utf8'), truth);
    assert.deepEqual(
      readdirSync(vdir).filter((f) => f.endsWith('.safetensors')),
      names,
    );
    for (const file of names) {
      const src = openSafetensors(join(dir, file));
      const dst = openSafetensors(join(vdir, file));
      try {
        assert.equal(JSON.parse(dst.metadata['modelsmith.variant']!).kind, kind);
        for (const t of src.tensors) {
          const a = src.readFloat32(t.name);
          const info = dst.info(t.name);
          const b = dst.readFloat32(t.name);
          assert.deepEqual(info.shape, t.shape);
          if (kind === 'fp16') {
            assert.equal(info.dtype, 'F16');
            a.forEach((v, i) => assert.equal(b[i], halfToFloat(floatToHalf(v))));
            continue;
          }
          assert.equal(info.dtype, 'F32');
          if (t.shape.length < 2) {
            assert.deepEqual(b, a, `${t.name}: biases are left as they are`);
            continue;
          }
          if (kind === 'int8') {
            const max = a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
            const scale = max / 127;
            assert.ok(new Set(b).size <= 255);
            b.forEach((v, i) => {
              const q = v / scale;
              assert.ok(Math.abs(q - Math.round(q)) < 1e-3 && Math.abs(q) <= 127 + 1e-3, `${t.name}[${i}] is a multiple of the scale`);
              assert.ok(Math.abs(v - a[i]!) <= scale / 2 + 1e-7);
            });
          } else {
            const zeroed = b.reduce((n, v, i) => n + (v === 0 && a[i] !== 0 ? 1 : 0), 0);
            assert.equal(zeroed, Math.floor(0.3 * a.length) - a.reduce((n, v) => n + (v === 0 ? 1 : 0), 0));
            let maxZeroed = 0,
              minKept = Infinity;
            b.forEach((v, i) => {
              if (v === 0) maxZeroed = Math.max(maxZeroed, Math.abs(a[i]!));
              else {
                assert.equal(v, a[i]);
                minKept = Math.min(minKept, Math.abs(a[i]!));
              }
            });
            assert.ok(maxZeroed <= minKept, 'the smallest magnitudes were pruned');
          }
        }
      } finally {
        src.close();
        dst.close();
      }
    }
  }
  assertUserError(() => makeZooVariant(join(root, 'nothing'), join(root, 'x'), 'fp16'), 'truth.json');
  assertUserError(() => makeZooVariant(dir, join(root, 'y'), 'pruned', { fraction: 1.5 }), 'pruneFraction expects', '1.5');
});
