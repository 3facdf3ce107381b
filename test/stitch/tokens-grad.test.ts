/**
 * Task-trained token stitches: the gradient of the cross-entropy through a frozen
 * receiver suffix with respect to the stitch's weights (patchify with the class-token
 * map into a ViT; unpatchify into a ResNet; per-token linear between ViTs) equals
 * central differences of the float64 reference.
 */
import { test } from 'node:test';
import { openModel } from '../../src/onnx/open.js';
import { planStitch } from '../../src/stitch/plan.js';
import { buildStitch, stitchParameters } from '../../src/stitch/build.js';
import { STITCH_PREFIX, stitchWithSuffix, suffixModel } from '../../src/stitch/compose.js';
import { stitchCut } from '../../src/stitch/cuts.js';
import { checkGradients } from '../helpers/gradcheck.js';
import { fixture } from '../helpers/paths.js';

const RESNET = openModel(fixture('torchvision', 'tv_resnet18.onnx'));
const VIT = openModel(fixture('torchvision', 'tv_vit.onnx'));

const CASES = [
  { what: 'ResNet stem image -> ViT stem tokens (strided patchify, class token from the pool)', a: RESNET, from: 'stem', b: VIT, to: 'stem' },
  { what: 'ResNet layer4.1 image -> ViT encoder_layer_0 tokens (upsampled patchify)', a: RESNET, from: 'layer4.1', b: VIT, to: 'encoder_layer_0' },
  { what: 'ViT encoder_layer_0 tokens -> ResNet layer1.1 image (unpatchify, upsampled)', a: VIT, from: 'encoder_layer_0', b: RESNET, to: 'layer1.1' },
  { what: 'ViT stem tokens -> ViT encoder_layer_0 tokens (per-token linear)', a: VIT, from: 'stem', b: VIT, to: 'encoder_layer_0' },
];

for (const c of CASES) {
  test(`stitch gradients through the receiver: ${c.what}`, async () => {
    const from = stitchCut(c.a, c.from),
      to = stitchCut(c.b, c.to);
    const spec = planStitch(from.shape, to.shape);
    const model = stitchWithSuffix(buildStitch(spec, { kind: 'random', seed: 3 }), suffixModel(c.b, to));
    await checkGradients({
      model,
      trainable: stitchParameters(spec).map((p) => STITCH_PREFIX + p),
      loss: 'cross-entropy',
      batchNorm: 'eval',
      batchSize: 2,
      coordinates: 12,
    });
  });
}
