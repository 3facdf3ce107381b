#!/usr/bin/env node
// The seed's mismatch measure (Table 3, as spec lego.md section 7 defines it) for component
// files already written: each component's k-way accuracy and mean max softmax on its own
// task's test images, and on the test images of every other class the share of its
// predictions per class and its mean max softmax. Components carry their normalisation.
//
//   node tools/lego-mismatch.mjs runs/lego13/default/vgg_fm/task-*.onnx > runs/lego13/mismatch-vgg_fm.json
import { openModel } from '../dist/src/onnx/open.js';
import { getLabels } from '../dist/src/onnx/metadata.js';
import { openDataset } from '../dist/src/data/resolve.js';
import { resolveNormalization } from '../dist/src/runtime/normalization.js';
import { mismatch } from '../dist/src/lego/score.js';

const files = process.argv.slice(2).filter((f) => f.endsWith('.onnx'));
if (!files.length) {
  console.error('usage: node tools/lego-mismatch.mjs <component.onnx>...');
  process.exit(2);
}
const test = await openDataset('fashion-mnist', 'test');
const rows = [];
for (const file of files) {
  const model = openModel(file);
  const task = (getLabels(model) ?? []).map((l) => l.class);
  const normalization = resolveNormalization(model, test.shape[0], undefined, { file }).normalization;
  rows.push({ file, ...(await mismatch(model, test, { task, normalization, session: { threads: 2 } })) });
}
console.log(JSON.stringify(rows, null, 1));
