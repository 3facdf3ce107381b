/**
 * Cuts through the CLI: extract, stitch and cka refuse a tensor that is no cut with one
 * line; --list-cuts shows the block-level names; cka runs on ShuffleNet (whose shape
 * arithmetic once reached the cut list and crashed it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { tinyCifar } from './helpers.js';

const dir = tempDir('cuts-cli-');
const data = tinyCifar(join(dir, 'data'), 20, 12);
const RESNET = fixture('torchvision', 'tv_resnet18.onnx');
const VIT = fixture('torchvision', 'tv_vit.onnx');
const INSIDE = '/layer1/layer1.0/relu/Relu_output_0';
const REASON =
  /tensor "\/layer1\/layer1\.0\/relu\/Relu_output_0" of .*tv_resnet18\.onnx is not a cut point: it is inside a block: the path into node "\/layer1\/layer1\.0\/Add" \(Add\) bypasses it/;

test('extract refuses a tensor inside a residual block with one line naming the bypassing node', () => {
  const out = join(dir, 'part.onnx');
  const r = runCli(['extract', RESNET, '--from', INSIDE, '-o', out]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, REASON);
  assert.ok(!existsSync(out));
  const ok = runCli(['extract', RESNET, '--from', 'layer2.0', '--to', 'features', '-o', out, '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).from, '/layer2/layer2.0/relu_1/Relu_output_0');
});

test('stitch refuses a sender tensor inside a block before creating its folder', () => {
  const out = join(dir, 'grid');
  const r = runCli(['stitch', RESNET, VIT, '--data', data, '--mode', 'lsq', '--senders', `stem,${INSIDE}`, '-o', out]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, REASON);
  assert.ok(!existsSync(out));
});

test('cka refuses a receiver tensor of shape arithmetic, and one inside a block, with one line', () => {
  const out = join(dir, 'cka');
  const shuffle = fixture('torchvision', 'tv_shufflenet_v2.onnx');
  const r = runCli(['cka', RESNET, shuffle, '--data', data, '--receivers', '/stage2/stage2.1/Add_output_0', '-o', out]);
  assert.ok(isOneLineError(r), r.stderr);
  assert.match(r.stderr, /"\/stage2\/stage2\.1\/Add_output_0" of .* is not a cut point: it does not depend on the values of the input/);
  const s = runCli(['cka', RESNET, VIT, '--data', data, '--senders', INSIDE, '-o', out]);
  assert.ok(isOneLineError(s), s.stderr);
  assert.match(s.stderr, REASON);
  assert.ok(!existsSync(out));
});

test('stitch --list-cuts shows the block-level cuts by name, with token shapes for the ViT', () => {
  const r = runCli(['stitch', RESNET, VIT, '--list-cuts', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const [res, vit] = JSON.parse(r.stdout).models as { cuts: { name: string; shape: number[] }[]; valid: { tensor: string }[]; recorded: boolean }[];
  assert.deepEqual(
    res!.cuts.map((c) => c.name),
    ['stem', 'layer1.0', 'layer1.1', 'layer2.0', 'layer2.1', 'layer3.0', 'layer3.1', 'layer4.0', 'layer4.1', 'features'],
  );
  assert.equal(res!.recorded, false);
  assert.ok(res!.valid.some((v) => v.tensor === '/layer1/layer1.0/Add_output_0'));
  assert.ok(!res!.valid.some((v) => v.tensor === INSIDE));
  assert.deepEqual(
    vit!.cuts.map((c) => [c.name, c.shape]),
    [
      ['stem', [17, 32]],
      ['encoder_layer_0', [17, 32]],
      ['encoder_layer_1', [17, 32]],
      ['features', [32]],
    ],
  );
});

test('cka runs on ShuffleNet with its default cuts (no shape arithmetic among them)', () => {
  const out = join(dir, 'cka-shuffle');
  const shuffle = fixture('torchvision', 'tv_shufflenet_v2.onnx');
  const r = runCli(['cka', shuffle, shuffle, '--data', data, '--split', 'test', '--samples', '12', '-o', out, '--json', '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(j.senders, ['stem', 'stage2.0', 'stage2.1', 'stage3.0', 'stage3.1', 'stage4.0', 'stage4.1', 'conv5']);
  assert.ok(j.values.every((row: (number | null)[]) => row.every((v) => v === null || (v >= 0 && v <= 1 + 1e-6))));
});
