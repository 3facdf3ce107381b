/**
 * Whole torchvision-family exports (fixtures/torchvision, default torch.onnx.export:
 * BatchNorm folded, Identity-aliased equal tensors, shape arithmetic on the batch axis)
 * against PyTorch's own float64 gradients (tools/torch/make_tv_grad_fixtures.py): the
 * training graph's loss, logits and every parameter's gradient agree to 1e-4 relative
 * per tensor, with the exporter's aliases trained as separate parameters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadModel } from '../../src/onnx/proto.js';
import { untieAliases } from '../../src/onnx/fold.js';
import { trainableParameters } from '../../src/onnx/parameters.js';
import { TrainingSession } from '../../src/autodiff/trainer.js';
import { fixture } from '../helpers/paths.js';

const NAMES = [
  'tv_resnet18',
  'tv_mobilenet_v3_small',
  'tv_efficientnet_b0',
  'tv_convnext',
  'tv_vit',
  'tv_resnet50',
  'tv_googlenet',
  'tv_densenet',
  'tv_regnet_x',
  'tv_regnet_y',
  'tv_shufflenet_v2',
  'tv_squeezenet',
  'tv_mobilenet_v2',
  'tv_vgg_bn',
  'tv_swin',
];
const TOLERANCE = 1e-4;

interface GradFile {
  model: string;
  io: string;
  labels: number[];
  loss: number;
  logits_shape: number[];
  logits: string;
  grads: Record<string, { shape: number[]; data: string }>;
}

function decode(b64: string, width: 4 | 8, count: number, what: string): Float64Array {
  const bytes = Buffer.from(b64, 'base64');
  assert.equal(bytes.length, count * width, `${what}: byte count`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float64Array.from({ length: count }, (_, i) => (width === 8 ? view.getFloat64(i * 8, true) : view.getFloat32(i * 4, true)));
}

const numel = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);

/** max |a - b| / max |b|: the tensor-wise relative error */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let diff = 0,
    scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

for (const name of NAMES) {
  test(`${name}: training-graph loss, logits and every parameter gradient equal PyTorch's (eval mode) to ${TOLERANCE} relative`, async () => {
    const ref = JSON.parse(readFileSync(fixture('torchvision', `${name}.grad.json`), 'utf8')) as GradFile;
    const io = JSON.parse(readFileSync(fixture('torchvision', ref.io), 'utf8')) as { input: string; input_shape: number[] };
    const input = Float32Array.from(decode(io.input, 4, numel(io.input_shape), 'input'));
    const model = untieAliases(loadModel(fixture('torchvision', ref.model)));
    const trainable = trainableParameters(model.graph);
    assert.deepEqual([...trainable].sort(), Object.keys(ref.grads).sort(), "parameters (aliases untied) are PyTorch's");
    const t = await TrainingSession.create(model, {
      trainable,
      loss: 'cross-entropy',
      batchSize: io.input_shape[0]!,
      batchNorm: 'eval',
      dropout: false,
      session: { threads: 1 },
    });
    try {
      const r = await t.step(input, BigInt64Array.from(ref.labels.map(BigInt)));
      assert.ok(Math.abs(r.loss - ref.loss) <= TOLERANCE * Math.abs(ref.loss), `loss ${r.loss} vs PyTorch ${ref.loss}`);
      assert.ok(relError(r.logits, decode(ref.logits, 8, numel(ref.logits_shape), 'logits')) < TOLERANCE, 'logits');
      const bad: string[] = [];
      for (const [p, g] of Object.entries(ref.grads)) {
        const want = decode(g.data, 4, numel(g.shape), p);
        const err = relError(r.grads.get(p)!, want);
        if (!(err < TOLERANCE)) bad.push(`${p}: ${err.toExponential(2)}`);
      }
      assert.deepEqual(bad, [], 'gradients off by more than the tolerance');
    } finally {
      await t.release();
    }
  });
}
