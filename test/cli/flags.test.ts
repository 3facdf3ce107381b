/**
 * Library errors name options as the TypeScript API spells them; the CLI prints the same
 * errors with its flags, through one table (src/cli/flags.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cliMessage, flagName, flagNamer } from '../../src/cli/flags.js';
import { OptionError, UserError, fromMarked, markedMessage, withContext } from '../../src/util/errors.js';
import { makeLineageZoo } from '../../src/lineage/zoo/make.js';
import { parseQueueUrl } from '../../src/queue/connection.js';
import { checkOptions } from '../../src/stitch/grid.js';
import { DEFAULT_CELL_OPTIONS } from '../../src/stitch/cell.js';
import { JobFailed, failureMessage } from '../../src/queue/coordinator.js';
import { runInProcess } from './in-process.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir('cli-flags');

test('an option key becomes its kebab-case flag, or the flag the table records', () => {
  assert.equal(flagName('trainLimit'), '--train-limit');
  assert.equal(flagName('weightDecay'), '--weight-decay');
  assert.equal(flagName('view.resize'), '--resize');
  assert.equal(flagName('batchSize'), '--batch');
  assert.equal(flagName('samplesPerClass'), '--samples');
  assert.equal(flagName('url'), '--queue');
  assert.equal(flagNamer('flat', 'class'), '--flat class');
  assert.equal(flagNamer('bnAfter', true), '--bn after');
  assert.equal(flagNamer('scale', false), '--no-scale');
});

test('an OptionError reads in the API terms for a library caller and in flags for the CLI', () => {
  const e = new OptionError((o) => `${o('batchSize')} must be a positive integer, got 0; or use ${o('flat', 'pool')}`);
  assert.ok(e instanceof UserError);
  assert.equal(e.message, 'batchSize must be a positive integer, got 0; or use flat=pool');
  assert.equal(cliMessage(e), '--batch must be a positive integer, got 0; or use --flat pool');
  assert.equal(cliMessage(new UserError('plain')), 'plain');
  const wrapped = withContext('cell a -> b: ', e);
  assert.equal(wrapped.message, `cell a -> b: ${e.message}`);
  assert.equal(cliMessage(wrapped), `cell a -> b: ${cliMessage(e)}`);
});

test('option names survive a trip to another process (queue worker, grid worker) and are named there', () => {
  const e = new OptionError((o) => `only 3 training images; lower ${o('batchSize')} or ${o('flat', 'pool')}`);
  const wire = markedMessage(e);
  assert.doesNotMatch(wire, /lower batchSize|--batch/);
  assert.equal(wire.split('\n').length, 1);
  assert.equal(fromMarked(wire).message, e.message);
  assert.equal(cliMessage(fromMarked(wire)), cliMessage(e));
  assert.equal(fromMarked('no options here').message, 'no options here');
  // a garbled mark is left as it is, not thrown on
  assert.equal(fromMarked('x \u0001{nope\u0002 y').message, 'x \u0001{nope\u0002 y');
  const failed = new JobFailed('cell 1', wire);
  assert.equal(failed.reason, e.message);
  assert.equal(cliMessage(failed), `cell 1: ${cliMessage(e)}`);
  const summary = new OptionError(failureMessage([failed, new UserError('disk full')], 4, 'jobs'));
  assert.match(summary.message, /^2 of 4 jobs failed: cell 1: only 3 training images; lower batchSize or flat=pool; disk full/);
  assert.match(cliMessage(summary), /^2 of 4 jobs failed: cell 1: only 3 training images; lower --batch or --flat pool; disk full/);
});

test('library calls name the option; the same failures through the CLI name the flag', async () => {
  // a zoo too large for its limit
  const zoo = { data: 'fashion-mnist-sample', trees: 100, children: 10, depth: 5 };
  await assert.rejects(makeLineageZoo({ ...zoo, outDir: join(dir, 'zoo') }), (e: unknown) => {
    assert.ok(e instanceof OptionError);
    assert.match(e.message, /^trees=100 children=10 depth=5 makes 11111100 models; at most 5000 are allowed$/);
    return true;
  });
  const big = await runInProcess(['lineage-zoo', '--data', zoo.data, '--trees', '100', '--children', '10', '--depth', '5', '-o', join(dir, 'zoo')]);
  assert.equal(big.code, 1);
  assert.equal(big.stderr.trim(), 'modelsmith: error: --trees 100 --children 10 --depth 5 makes 11111100 models; at most 5000 are allowed');

  // an option the CLI parses as a plain number and the library checks
  await assert.rejects(
    makeLineageZoo({ data: zoo.data, outDir: join(dir, 'zoo'), pruneFraction: 1.5 }),
    /^OptionError: pruneFraction expects a number in \(0, 1\), got 1\.5$/,
  );
  const prune = await runInProcess(['lineage-zoo', '--data', zoo.data, '--prune-fraction', '1.5', '-o', join(dir, 'zoo')]);
  assert.equal(prune.stderr.trim(), 'modelsmith: error: --prune-fraction expects a number in (0, 1), got 1.5');

  // a queue URL: `url` of the API, --queue of the CLI
  assert.throws(() => parseQueueUrl('http://host:6379'), /^OptionError: url expects a redis:\/\/ or rediss:\/\/ URL, got a http: URL$/);
  const worker = await runInProcess(['worker', '--queue', 'http://host:6379', '--work', join(dir, 'work')]);
  assert.equal(worker.stderr.trim(), 'modelsmith: error: --queue expects a redis:// or rediss:// URL, got a http: URL');

  // a switch: BatchNorm after a least-squares stitch
  assert.throws(
    () => checkOptions({ ...DEFAULT_CELL_OPTIONS, mode: 'lsq', bnAfter: true }),
    (e: unknown) =>
      e instanceof OptionError && e.message === 'a least-squares stitch cannot have BatchNorm after it (bnAfter=true); use bnBefore=true or no BatchNorm',
  );
});
