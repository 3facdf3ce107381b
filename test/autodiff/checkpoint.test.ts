import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { loadCheckpoint, saveCheckpoint, type TrainingCheckpoint } from '../../src/autodiff/checkpoint.js';
import { openSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { encodeModel } from '../../src/onnx/proto.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { runningStatistics, trainableParameters } from '../../src/onnx/parameters.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';

function checkpoint(epoch: number): TrainingCheckpoint {
  const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.25, input: [1, 28, 28], seed: 1 });
  const first = trainableParameters(model.graph)[0]!;
  (model.graph.initializers.get(first)!.data as Float32Array)[0] = epoch;
  const state = new Map<string, Float32Array>([
    [`${first}/momentum`, Float32Array.from({ length: model.graph.initializers.get(first)!.data.length }, (_, i) => i * 0.5 + epoch)],
    ['fc.bias/momentum', Float32Array.from([1, -2, 3.5])],
  ]);
  return {
    model,
    optimizer: { config: { kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 }, steps: 390 * epoch, state },
    epoch,
    step: 390 * epoch,
    meta: { seed: 7, rng: [1, 2, 3, 4], best: { epoch: 1, accuracy: 0.8125 }, history: [{ epoch: 1, loss: 0.5 }], schedule: { kind: 'cosine' } },
  };
}

test('a checkpoint round-trips: model with weights, optimiser state, epoch, step, meta', () => {
  const path = join(tempDir(), 'run.ckpt');
  const saved = checkpoint(2);
  saveCheckpoint(path, saved);
  const loaded = loadCheckpoint(path);
  assert.deepEqual(encodeModel(loaded.model), encodeModel(saved.model), 'same model bytes, initializers in the same order');
  assert.deepEqual(loaded.optimizer, saved.optimizer);
  assert.equal(loaded.epoch, 2);
  assert.equal(loaded.step, 780);
  assert.deepEqual(loaded.meta, saved.meta);
  assert.deepEqual(readdirSync(join(path, '..')), ['run.ckpt']);
});

test('the checkpoint is a plain safetensors file: weights by initializer name, optimiser state, model bytes', () => {
  const path = join(tempDir(), 'run.ckpt');
  const saved = checkpoint(1);
  saveCheckpoint(path, saved);
  const f = openSafetensors(path);
  const names = new Set(f.tensors.map((t) => t.name));
  for (const p of [...trainableParameters(saved.model.graph), ...runningStatistics(saved.model.graph)]) assert.ok(names.has(p), p);
  assert.ok(names.has('optimizer/fc.bias/momentum'));
  assert.equal(f.info('__model__.onnx').dtype, 'U8');
  assert.equal(f.readFloat32(trainableParameters(saved.model.graph)[0]!)[0], 1);
  assert.equal(f.metadata['format'], 'modelsmith-checkpoint');
  assert.equal(JSON.parse(f.metadata['meta.best']!).accuracy, 0.8125);
  f.close();
});

test('a truncated checkpoint is refused with a clear error', () => {
  const dir = tempDir();
  const path = join(dir, 'run.ckpt');
  saveCheckpoint(path, checkpoint(1));
  const bytes = readFileSync(path);
  const cut = join(dir, 'cut.ckpt');
  for (const length of [0, 7, 100, Math.floor(bytes.length / 2), bytes.length - 1]) {
    writeFileSync(cut, bytes.subarray(0, length));
    assertUserError(() => loadCheckpoint(cut), cut, /truncated|too short/);
  }
});

test('files that are not checkpoints of this version, or lack tensors, are refused', () => {
  const dir = tempDir();
  const other = join(dir, 'weights.safetensors');
  writeSafetensors(other, { w: { dtype: 'float32', dims: [1], data: new Float32Array(1) } }, { format: 'pt' });
  assertUserError(() => loadCheckpoint(other), other, 'not a modelsmith training checkpoint');

  const path = join(dir, 'run.ckpt');
  saveCheckpoint(path, checkpoint(1));
  const f = openSafetensors(path);
  const tensors = new Map(f.tensors.map((t) => [t.name, f.readTensor(t.name)]));
  const metadata = { ...f.metadata };
  f.close();

  const future = join(dir, 'future.ckpt');
  writeSafetensors(future, tensors, { ...metadata, format_version: '99' });
  assertUserError(() => loadCheckpoint(future), future, 'version 99', 'reads version 1');

  const missing = join(dir, 'missing.ckpt');
  const param = trainableParameters(checkpoint(1).model.graph)[3]!;
  writeSafetensors(
    missing,
    [...tensors].filter(([n]) => n !== param),
    metadata,
  );
  assertUserError(() => loadCheckpoint(missing), missing, `lacks tensor "${param}"`);

  const noModel = join(dir, 'nomodel.ckpt');
  writeSafetensors(
    noModel,
    [...tensors].filter(([n]) => n !== '__model__.onnx'),
    metadata,
  );
  assertUserError(() => loadCheckpoint(noModel), '__model__.onnx');

  const badMeta = join(dir, 'badmeta.ckpt');
  writeSafetensors(badMeta, tensors, { ...metadata, epoch: '"two"' });
  assertUserError(() => loadCheckpoint(badMeta), '"epoch"', 'non-negative integer');
});

test("an initializer named like the checkpoint's own tensors is refused", () => {
  const ckpt = checkpoint(1);
  ckpt.model.graph.initializers.set('optimizer/x', { dtype: 'float32', dims: [1], data: new Float32Array(1) });
  assertUserError(() => saveCheckpoint(join(tempDir(), 'x.ckpt'), ckpt), '"optimizer/x"', 'reserved');
});

test('a save that fails while writing leaves the previous checkpoint intact and no temp file', () => {
  const dir = tempDir();
  const path = join(dir, 'run.ckpt');
  saveCheckpoint(path, checkpoint(1));
  const before = readFileSync(path);
  const realWrite = fs.writeSync;
  let calls = 0;
  // The writer imports writeSync from node:fs; syncBuiltinESMExports makes it see the patch.
  fs.writeSync = ((...args: Parameters<typeof fs.writeSync>) => {
    if (++calls > 1) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    return (realWrite as (...a: unknown[]) => number)(...args);
  }) as typeof fs.writeSync;
  syncBuiltinESMExports();
  try {
    assert.throws(() => saveCheckpoint(path, checkpoint(2)), /ENOSPC/);
  } finally {
    fs.writeSync = realWrite;
    syncBuiltinESMExports();
  }
  assert.ok(calls > 1, 'the header was written before the failure');
  assert.deepEqual(readFileSync(path), before);
  assert.equal(loadCheckpoint(path).epoch, 1);
  assert.deepEqual(readdirSync(dir), ['run.ckpt']);
});

test('a process killed while saving checkpoints leaves a whole one', async () => {
  const dir = tempDir();
  const path = join(dir, 'run.ckpt');
  const mod = (p: string): string => new URL(p, import.meta.url).href;
  // A child saves ~7 MB checkpoints in a loop (epoch i has first weight i) until killed.
  const script = `
    import { saveCheckpoint } from ${JSON.stringify(mod('../../src/autodiff/checkpoint.js'))};
    import { createZooModel } from ${JSON.stringify(mod('../../src/nn/zoo.js'))};
    const model = createZooModel('mlp', { hidden: [1024, 1024], input: [1, 28, 28], seed: 1 });
    const first = model.graph.initializers.values().next().value.data;
    for (let epoch = 1; ; epoch++) {
      first[0] = epoch;
      saveCheckpoint(${JSON.stringify(path)}, { model, optimizer: { config: { kind: 'sgd' }, steps: epoch, state: new Map() }, epoch, step: epoch, meta: {} });
      process.stdout.write('.');
    }`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    let saves = 0;
    let armed = false;
    child.stdout.on('data', (d: Buffer) => {
      saves += d.length;
      // Whenever the kill lands (mid-write or between saves), the file must be whole.
      if (saves >= 3 && !armed) {
        armed = true;
        setTimeout(() => child.kill('SIGKILL'), 5);
      }
    });
    child.on('exit', () => (saves >= 3 ? resolve() : reject(new Error(`child exited after ${saves} saves`))));
  });
  const ckpt = loadCheckpoint(path);
  assert.ok(ckpt.epoch >= 3, `epoch ${ckpt.epoch}`);
  assert.equal(ckpt.step, ckpt.epoch);
  assert.equal((ckpt.model.graph.initializers.values().next().value!.data as Float32Array)[0], ckpt.epoch, 'weights of the same save');
});
