import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDataset } from '../../src/data/resolve.js';
import { evaluate } from '../../src/runtime/evaluate.js';
import { ModelSession } from '../../src/runtime/session.js';
import { listCuts } from '../../src/stitch/cuts.js';
import { planStitch } from '../../src/stitch/plan.js';
import { buildStitch } from '../../src/stitch/build.js';
import { composeStitched } from '../../src/stitch/compose.js';
import { StitchContext } from '../../src/stitch/context.js';
import { CellSessions, DEFAULT_CELL_OPTIONS, runCell } from '../../src/stitch/cell.js';
import { getInputSpec } from '../../src/onnx/metadata.js';
import { tinyTrained } from './helpers.js';

const { model } = await tinyTrained(11);
const test_ = await openDataset('fashion-mnist-sample', 'test');
const train_ = await openDataset('fashion-mnist-sample', 'train');
const cuts = listCuts(model).filter((c) => c.kind !== 'logits');

test('stitching a network into itself with an identity 1x1 stitch gives its own accuracy and logits, at every cut', async () => {
  const own = await evaluate(model, test_, { threads: 1 });
  assert.ok(own.accuracy > 0.5, `the tiny model learned something: ${own.accuracy}`);
  const norm = getInputSpec(model)!;
  const x = new Float32Array(8 * 784);
  await test_.read([0, 1, 2, 3, 4, 5, 6, 7], x);
  for (let i = 0; i < x.length; i++) x[i] = (x[i]! - norm.mean![0]!) / norm.std![0]!;
  const ref = await ModelSession.create(model, { threads: 1 });
  const want = (await ref.run({ input: { dims: [8, 1, 28, 28], data: x } }))['logits']!.data as Float32Array;
  await ref.release();
  for (const c of cuts) {
    const stitch = buildStitch(planStitch(c.shape, c.shape), { kind: 'identity' });
    const m = composeStitched(model, c.tensor, stitch, model, c.tensor);
    const r = await evaluate(m, test_, { threads: 1 });
    assert.equal(r.correct, own.correct, `cut ${c.name}: ${r.accuracy} vs ${own.accuracy}`);
    const s = await ModelSession.create(m, { threads: 1 });
    const out = await s.run({ input: { dims: [8, 1, 28, 28], data: x } });
    await s.release();
    const got = Object.values(out)[0]!.data as Float32Array;
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) < 1e-4, `cut ${c.name} logit ${i}: ${got[i]} vs ${want[i]}`);
  }
});

test('the least-squares stitch of a network into itself fits with relative error < 1e-4 at every cut, keeping its accuracy', async () => {
  const ctx = new StitchContext({ a: model, b: model, train: train_, test: test_, trainLimit: 400, testLimit: 300, session: { threads: 1 } });
  const sessions = new CellSessions();
  const own = await evaluate(model, test_, { threads: 1, indices: Array.from(ctx.test.indices) });
  try {
    for (const c of cuts) {
      const r = await runCell(ctx, sessions, { kind: 'trained', sender: c, receiver: c }, { ...DEFAULT_CELL_OPTIONS, mode: 'lsq' });
      assert.ok(r.fitError! < 1e-4, `cut ${c.name}: fit error ${r.fitError}`);
      assert.ok(r.testFitError! < 1e-4, `cut ${c.name}: test fit error ${r.testFitError}`);
      assert.ok(Math.abs(r.accuracy - own.accuracy) <= 1 / 300 + 1e-12, `cut ${c.name}: ${r.accuracy} vs ${own.accuracy}`);
    }
  } finally {
    await sessions.release();
    await ctx.release();
  }
});

test('task training through the frozen receiver: the grid fast path scores like evaluate() on the composed model, and training helps', async () => {
  const ctx = new StitchContext({ a: model, b: model, train: train_, test: test_, trainLimit: 512, testLimit: 300, session: { threads: 1 } });
  const sessions = new CellSessions();
  try {
    const [stem, l1] = [cuts.find((c) => c.name === 'stem')!, cuts.find((c) => c.name === 'layer2.0')!];
    const o = { ...DEFAULT_CELL_OPTIONS, epochs: 2, batchSize: 64, lr: 0.05 };
    const trained = await runCell(ctx, sessions, { kind: 'trained', sender: l1, receiver: stem }, o);
    const before = await runCell(ctx, sessions, { kind: 'trained', sender: l1, receiver: stem }, { ...o, mode: 'lsq' });
    assert.equal(trained.stitch.kind, 'upsample');
    assert.ok(trained.accuracy > 0.5, `trained stitch accuracy ${trained.accuracy}`);
    assert.ok(Number.isFinite(before.accuracy));
    // a random receiver, seeded: same result twice (sessions reused the second time)
    await ctx.prepare(['random-receiver']);
    const r1 = await runCell(ctx, sessions, { kind: 'random-receiver', sender: stem, receiver: stem }, { ...o, epochs: 1 });
    const r2 = await runCell(ctx, sessions, { kind: 'random-receiver', sender: stem, receiver: stem }, { ...o, epochs: 1 });
    assert.equal(r1.accuracy, r2.accuracy);
    assert.ok(sessions.taskTrain.hits >= 1, 'training session reused');
    // three receivers' networks and stitch shapes went through: one training and one evaluation session are left
    assert.ok(sessions.live <= 2, `${sessions.live} sessions alive`);
    assert.ok(sessions.taskTrain.released >= 1 && sessions.taskEval.released >= 1);
  } finally {
    await sessions.release();
    await ctx.release();
  }
});

test('a copy cell started from least squares, with BatchNorm before the stitch, reports the copy measures and the lsq start, and keeps no session', async () => {
  const ctx = new StitchContext({ a: model, b: model, train: train_, test: test_, trainLimit: 256, testLimit: 128, session: { threads: 1 } });
  const sessions = new CellSessions();
  try {
    const c = cuts.find((x) => x.name === 'layer2.0')!;
    const o = { ...DEFAULT_CELL_OPTIONS, mode: 'copy' as const, init: 'lsq' as const, bnBefore: true, epochs: 1, batchSize: 64 };
    const r = await runCell(ctx, sessions, { kind: 'trained', sender: c, receiver: c }, o);
    assert.equal(r.mode, 'copy');
    if (r.mode !== 'copy') return;
    for (const v of [r.accuracy, r.vanillaAccuracy, r.initAccuracy, r.fitError, r.testFitError, r.trainLoss, r.ev, r.es, r.sv]) {
      assert.ok(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${JSON.stringify(r)}`);
    }
    // the stitch bakes its BatchNorm statistics in: its training sessions are its own, released after use
    assert.equal(sessions.taskTrain.misses + sessions.copyTrain.misses, 0);
  } finally {
    await sessions.release();
    await ctx.release();
  }
});
