import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyView, formatDataSpec, parseDataSpec, parseOutputLabels, resampleMatrix } from '../../src/data/view.js';
import { openDataset } from '../../src/data/resolve.js';
import { ByteImageDataset } from '../../src/data/memory.js';
import { defaultNormalization } from '../../src/data/known.js';
import { mapOutputs } from '../../src/runtime/labels.js';
import { saveModel } from '../../src/onnx/proto.js';
import { UserError } from '../../src/util/errors.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { constantClassifier, onehot } from '../helpers/models.js';
import { runCli, isOneLineError } from '../helpers/cli.js';

interface ResizeCase { from: [number, number]; to: [number, number]; x: number[]; y: number[] }

/** A one-image dataset holding `pixels` (bytes, CHW). */
function oneImage(shape: [number, number, number], pixels: Uint8Array): ByteImageDataset {
  return new ByteImageDataset({ name: 'tiny', split: 'test', source: 'tiny', shape, classes: 2 }, pixels, Uint8Array.of(1), 'labels');
}

test('resize equals PyTorch\'s antialiased bilinear interpolation (torchvision Resize), up and down, square and not', () => {
  const { cases } = JSON.parse(readFileSync(fixture('torch', 'resize.json'), 'utf8')) as { cases: ResizeCase[] };
  for (const c of cases) {
    const [h0, w0] = c.from;
    const [h1, w1] = c.to;
    const rows = resampleMatrix(h0, h1);
    const cols = resampleMatrix(w0, w1);
    const got = new Float64Array(h1 * w1);
    for (let y = 0; y < h1; y++) {
      for (let x = 0; x < w1; x++) {
        let acc = 0;
        for (let a = 0; a < rows.count[y]!; a++) {
          for (let b = 0; b < cols.count[x]!; b++) {
            acc += rows.weights[y * rows.taps + a]! * cols.weights[x * cols.taps + b]! * c.x[(rows.start[y]! + a) * w0 + cols.start[x]! + b]!;
          }
        }
        got[y * w1 + x] = acc;
      }
    }
    const worst = Math.max(...Array.from(got, (v, i) => Math.abs(v - c.y[i]!)));
    assert.ok(worst < 1e-5, `${h0}x${w0} -> ${h1}x${w1}: max difference ${worst}`);
  }
});

test('a view resizes through the dataset and converts gray <-> RGB with torchvision\'s weights', async () => {
  const gray = oneImage([1, 2, 2], Uint8Array.of(0, 255, 255, 0));
  const rgb = applyView(gray, { channels: 3, size: [4, 4] });
  assert.deepEqual(rgb.shape, [3, 4, 4]);
  const out = new Float32Array(3 * 16);
  await rgb.read([0], out);
  assert.deepEqual(Array.from(out.subarray(0, 16)), Array.from(out.subarray(16, 32)), 'the gray plane is replicated');
  assert.ok(Math.abs(out[0]! - 0) < 1e-6 && Math.abs(out[3]! - 1) < 1e-6, 'corners keep their values when enlarging');
  assert.match(rgb.source, /resized 2x2 -> 4x4 \(bilinear\), grayscale -> RGB/);

  const colour = oneImage([3, 1, 1], Uint8Array.of(255, 0, 0));
  const g = applyView(colour, { channels: 1 });
  const one = new Float32Array(1);
  await g.read([0], one);
  assert.ok(Math.abs(one[0]! - 0.2989) < 1e-6);
  assert.throws(() => applyView(oneImage([2, 1, 1], Uint8Array.of(1, 2)), { channels: 3 }), /only 1 <-> 3/);
});

test('the view travels in the spec string and round-trips', async () => {
  const spec = formatDataSpec('fashion-mnist-sample', { size: [32, 32], channels: 3, labels: '0-9' });
  assert.equal(spec, 'fashion-mnist-sample::resize=32x32;channels=3;labels=0-9');
  assert.deepEqual(parseDataSpec(spec), { base: 'fashion-mnist-sample', view: { size: [32, 32], channels: 3, labels: '0-9' } });
  assert.equal(formatDataSpec(spec, { channels: 1 }), 'fashion-mnist-sample::channels=1', 'a new view replaces the old one');
  const ds = await openDataset(spec, 'test', { announce: false });
  assert.deepEqual(ds.shape, [3, 32, 32]);
  assert.equal(ds.name, 'fashion-mnist', 'the dataset keeps its name, so label metadata still matches');
  assert.throws(() => parseDataSpec('fashion-mnist::zoom=2'), /unknown view setting "zoom"/);
  assert.throws(() => parseDataSpec('fashion-mnist::resize=0'), UserError);
  assert.throws(() => parseDataSpec('fashion-mnist::resize=99999'), UserError);
});

test('--labels maps the outputs of an unlabelled model; names, ids and unknown entries', async () => {
  const ds = { name: 'fashion-mnist', classes: 10, classNames: ['T-shirt/top', 'Trouser', 'Pullover'] };
  assert.deepEqual(parseOutputLabels('2,0', ds), [2, 0]);
  assert.deepEqual(parseOutputLabels('3-5', ds), [3, 4, 5]);
  const dir = tempDir();
  writeFileSync(join(dir, 'names.txt'), 'trouser\nsomething else\n7\n');
  assert.deepEqual(parseOutputLabels(`file:${join(dir, 'names.txt')}`, ds), [1, -1, 7]);
  writeFileSync(join(dir, 'none.json'), '["cat", "dog"]');
  assert.throws(() => parseOutputLabels(`file:${join(dir, 'none.json')}`, ds), /none of its 2 labels is a class of fashion-mnist/);
  assert.throws(() => parseOutputLabels('a-b', ds), /expects class ids/);

  // a 3-output model without metadata: refused without --labels, mapped with it
  const model = constantClassifier(onehot(3, 1));
  assert.throws(() => mapOutputs(model, ds, 'm.onnx'), /m.onnx has 3 outputs and carries no label metadata.*give labels \(e\.g\. labels=0-2 or labels=file:names\.txt\)/);
  const map = mapOutputs(model, { ...ds, outputLabels: [4, -1, 9] }, 'm.onnx');
  assert.deepEqual(Array.from(map.classOf), [4, -1, 9]);
  assert.throws(() => mapOutputs(model, { ...ds, outputLabels: [4, 9] }, 'm.onnx'), /3 outputs but labels gives 2 labels/);
});

test('a grayscale dataset seen as RGB gets its statistics in every channel', () => {
  assert.deepEqual(defaultNormalization('fashion-mnist-sample', 3), { mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353] });
  const gray = defaultNormalization('cifar10', 1);
  assert.ok(Math.abs(gray.mean[0]! - (0.2989 * 0.4914 + 0.587 * 0.4822 + 0.114 * 0.4465)) < 1e-9);
});

test('CLI: --fit, --resize/--channels, --labels and --norm on a foreign model; impossible fits refused in one line', () => {
  const dir = tempDir();
  const rgb = join(dir, 'rgb.onnx');
  saveModel(constantClassifier(onehot(10, 3), [3, 16, 16]), rgb);
  const wide = join(dir, 'wide.onnx');
  saveModel(constantClassifier(onehot(10, 3), [3, 16, 24]), wide);
  const five = join(dir, 'five.onnx');
  saveModel(constantClassifier(onehot(5, 2), [1, 28, 28]), five);
  const data = ['--data', 'fashion-mnist-sample'];

  const bare = runCli(['eval', rgb, ...data]);
  assert.ok(isOneLineError(bare), bare.stderr);
  assert.match(bare.stderr, /expects inputs of shape 3x16x16.*1x28x28: adapt them with a view of the data, --resize 16x16 and --channels 3$/m);

  const fit = runCli(['eval', rgb, ...data, '--fit', '--norm', 'dataset', '--json']);
  assert.equal(fit.code, 0, fit.stderr);
  assert.equal(JSON.parse(fit.stdout).accuracy, 0.1, 'the constant class-3 model scores the share of class 3 in the sample');
  assert.match(JSON.parse(fit.stdout).data, /resized 28x28 -> 16x16 \(bilinear, antialiased\), grayscale -> RGB/);
  assert.equal(fit.stderr, '', '--json prints nothing else');
  const told = runCli(['eval', rgb, ...data, '--fit', '--norm', 'dataset']);
  assert.match(told.stderr, /--norm dataset \(mean 0.2860,0.2860,0.2860/);

  const aspect = runCli(['eval', wide, ...data, '--fit']);
  assert.ok(isOneLineError(aspect), aspect.stderr);
  assert.match(aspect.stderr, /--fit: .*wide.onnx takes 16x24 images and fashion-mnist has 28x28: resizing would change the aspect ratio.*--resize 16x24/);
  // a mistyped model path with --fit: named as missing, not as "no model file given"
  const missing = runCli(['eval', wide.replace('wide.onnx', 'wdie.onnx'), ...data, '--fit']);
  assert.ok(isOneLineError(missing), missing.stderr);
  assert.match(missing.stderr, /model file not found: .*wdie\.onnx$/m);
  const square = runCli(['eval', wide, ...data, '--resize', '16', '--channels', '3']);
  assert.ok(isOneLineError(square), square.stderr);
  assert.match(square.stderr, /expects inputs of shape 3x16x24/);
  const stretched = runCli(['eval', wide, ...data, '--resize', '16x24', '--channels', '3', '--json']);
  assert.equal(stretched.code, 0, stretched.stderr);

  const unlabelled = runCli(['eval', five, ...data]);
  assert.ok(isOneLineError(unlabelled), unlabelled.stderr);
  assert.match(unlabelled.stderr, /has 5 outputs and carries no label metadata.*give --labels/);
  const labelled = runCli(['eval', five, ...data, '--labels', '5-9', '--json']);
  assert.equal(labelled.code, 0, labelled.stderr);
  const r = JSON.parse(labelled.stdout) as { perClass: Record<string, number> };
  assert.deepEqual(Object.keys(r.perClass).sort(), ['5', '6', '7', '8', '9'], 'only the classes the outputs stand for are scored');
  assert.equal(r.perClass['7'], 1, 'output 2 (always the arg-max) stands for class 7');

  for (const args of [['--norm', 'imagenet'], ['--norm', 'dataset', '--mean', '0.5'], ['--fit', '--resize', '8'], ['--channels', '2'], ['--resize', '0x4'], ['--labels', 'nofile.txt']]) {
    const bad = runCli(['eval', rgb, ...data, ...args]);
    assert.ok(isOneLineError(bad), `${args.join(' ')}: ${bad.stderr}`);
  }
});
