/**
 * Commands are thin: what they print is what the library's text functions return for the
 * same call, so a TypeScript user gets the same report.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { packagePath } from '../../src/util/paths.js';
import { openModel } from '../../src/onnx/open.js';
import { describeModel, modelReportText } from '../../src/report/inspect.js';
import { evalText, evaluate } from '../../src/runtime/evaluate.js';
import { openDataset } from '../../src/data/resolve.js';
import { cutListingText, describeCuts } from '../../src/stitch/tables.js';
import { flagNamer } from '../../src/cli/flags.js';
import { runInProcess, tinyIdx } from './in-process.js';
import { tempDir } from '../helpers/paths.js';

const model = packagePath('fixtures', 'torch', 'inception_small.onnx');

test('inspect prints modelReportText of describeModel', async () => {
  const r = await runInProcess(['inspect', model]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${modelReportText(describeModel(openModel(model), model))}\n`);
});

test('stitch --list-cuts prints cutListingText of describeCuts, naming the flags', async () => {
  const r = await runInProcess(['stitch', model, '--list-cuts']);
  assert.equal(r.code, 0, r.stderr);
  const text = cutListingText(describeCuts(openModel(model), model), flagNamer);
  assert.equal(r.stdout, `${text}\n\n`);
  // the library's own text names the options as the API does
  assert.doesNotMatch(cutListingText(describeCuts(openModel(model), model)), /--senders/);
});

test('eval prints evalText of evaluate', async () => {
  const data = tinyIdx(join(tempDir('thin'), 'tiny-thin'));
  const r = await runInProcess(['eval', model, '--data', data, '--threads', '1']);
  assert.equal(r.code, 0, r.stderr);
  const ds = await openDataset(data, 'test');
  assert.equal(r.stdout, `${evalText(await evaluate(openModel(model), ds, { threads: 1 }), ds, model)}\n`);
});
