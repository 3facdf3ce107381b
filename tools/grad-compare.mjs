#!/usr/bin/env node
// Compares modelsmith's training-graph gradients of an exported model with PyTorch's own.
//
//   node tools/grad-compare.mjs <model.onnx> <ref.safetensors> [--tolerance 1e-4] [--json]
//
// <ref> is written by tools/torch/grad_reference.py (input batch, labels, float64 logits,
// float32 copies of PyTorch's float64 gradients `grad/<onnx tensor>`). The model runs one
// eval-mode step (BatchNorm on running statistics, Dropout off, cross-entropy mean) with
// the exporter's Identity aliases untied, as `modelsmith train` does. Prints the worst
// per-tensor relative error (max |ours - torch| / max |torch| over the tensor), the loss
// and logits errors, and PyTorch's own float32-vs-float64 error on the batch (the
// reference records it: at a ReLU kink within float32 rounding both jump); exits 1 when
// the worst exceeds the tolerance. Needs `npx tsc -p .` first (it uses dist/src).
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const load = (p) => import(join(root, 'dist', 'src', p));
const { loadModel } = await load('onnx/proto.js');
const { untieAliases } = await load('onnx/fold.js');
const { trainableParameters } = await load('onnx/parameters.js');
const { TrainingSession } = await load('autodiff/trainer.js');
const { openSafetensors } = await load('io/safetensors.js');

const args = process.argv.slice(2);
const flag = (name) => { const i = args.indexOf(name); return i >= 0 ? args.splice(i, 2)[1] : undefined; };
const json = args.includes('--json') ? (args.splice(args.indexOf('--json'), 1), true) : false;
const tolerance = Number(flag('--tolerance') ?? 1e-4);
if (args.length !== 2 || !(tolerance > 0)) {
  console.error('usage: node tools/grad-compare.mjs <model.onnx> <ref.safetensors> [--tolerance 1e-4] [--json]');
  process.exit(2);
}
const [modelFile, refFile] = args;

function relError(a, b) {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

const ref = openSafetensors(refFile);
const input = ref.readTensor('input');
const labels = ref.readTensor('labels');
const logits = ref.readTensor('logits').data;
const torchLoss = Number(ref.metadata.loss);
// PyTorch's own float32 step against its float64 one on this batch: how far float32 rounding moves these gradients
const torch32 = ref.metadata.float32_error === undefined ? undefined : Number(ref.metadata.float32_error);
const model = untieAliases(loadModel(modelFile));
const trainable = trainableParameters(model.graph);
const refNames = ref.tensors.map((t) => t.name).filter((n) => n.startsWith('grad/')).map((n) => n.slice(5));
const missing = refNames.filter((n) => !trainable.includes(n));
const extra = trainable.filter((n) => !refNames.includes(n));
if (missing.length || extra.length) {
  console.error(`parameters differ: in the reference only [${missing.slice(0, 6).join(', ')}], in the model only [${extra.slice(0, 6).join(', ')}]`);
  process.exit(1);
}
const session = await TrainingSession.create(model, {
  trainable, loss: 'cross-entropy', batchSize: input.dims[0], batchNorm: 'eval', dropout: false, session: { threads: 1 },
});
const r = await session.step(input.data, labels.data);
await session.release();
const rows = refNames.map((name) => ({ name, error: relError(r.grads.get(name), ref.readFloat32(`grad/${name}`)) }));
ref.close();
rows.sort((a, b) => b.error - a.error);
const result = {
  model: modelFile, batch: input.dims[0], tensors: rows.length, worst: rows[0]?.error ?? 0, worstTensor: rows[0]?.name ?? null,
  lossError: Math.abs(r.loss - torchLoss) / Math.abs(torchLoss), logitsError: relError(r.logits, logits), tolerance,
  torchFloat32Error: torch32 ?? null,
};
if (json) console.log(JSON.stringify(result));
else {
  for (const row of rows.slice(0, 4)) console.log(`  ${row.error.toExponential(2)} ${row.name}`);
  console.log(`  loss ${r.loss.toFixed(6)} vs PyTorch ${torchLoss.toFixed(6)} (relative ${result.lossError.toExponential(2)}), logits relative ${result.logitsError.toExponential(2)}`);
  const verdict = result.worst <= tolerance ? 'within' : 'ABOVE';
  const floor = torch32 === undefined ? '' : `; PyTorch float32 ${torch32.toExponential(1)}`;
  console.log(`worst per-tensor relative error ${result.worst.toExponential(1)} over ${rows.length} tensors (batch ${result.batch}${floor}), ${verdict} ${tolerance}`);
}
process.exit(result.worst <= tolerance && result.lossError <= tolerance ? 0 : 1);
