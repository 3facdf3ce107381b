/**
 * cka, lego-experiment and lineage-zoo with --queue: the same files and numbers as the
 * local run, computed by worker processes that share nothing with the coordinator but
 * the Redis URL.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createZooModel } from '../../src/nn/zoo.js';
import { saveModel } from '../../src/onnx/proto.js';
import { setInputSpec, setLabels } from '../../src/onnx/metadata.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { queueModels, runCliAsync, startRedis, startWorkerProcess, stopWorker } from './helpers.js';

const dir = tempDir('queue-commands-');
const redis = await startRedis();
const workers = [startWorkerProcess(redis.url, 'c1'), startWorkerProcess(redis.url, 'c2')];
after(async () => {
  await Promise.all(workers.map(stopWorker));
  await redis.stop();
});

/** Runs a command locally and through the queue into two folders. */
async function both(args: string[], name: string): Promise<[string, string]> {
  const local = join(dir, `${name}-local`),
    queued = join(dir, `${name}-queued`);
  const l = runCli([...args, '-o', local, '--quiet', '--threads', '1']);
  assert.equal(l.code, 0, l.stderr);
  const q = await runCliAsync([...args, '-o', queued, '--quiet', '--queue', redis.url]);
  assert.equal(q.code, 0, q.stderr);
  return [local, queued];
}

const json = (f: string): Record<string, unknown> => JSON.parse(readFileSync(f, 'utf8'));
/** Drops timings and the provenance block (date, command line: they differ between any two runs) from a JSON value. */
const untimed = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'seconds' || k === 'provenance' ? undefined : x)));
const files = (d: string): string[] => (existsSync(d) ? readdirSync(d).sort() : []);

test('cka --queue: the pair as one job, the same matrices as a local run', async () => {
  const [a, b] = queueModels(dir);
  const [local, queued] = await both(['cka', a!, b!, '--data', 'fashion-mnist-sample', '--samples', '48', '--controls', '--random-bn', 'init'], 'cka');
  const l = json(join(local, 'matrix.json')),
    q = json(join(queued, 'matrix.json'));
  for (const k of ['matrices', 'triangles', 'values', 'senders', 'receivers', 'samples', 'a', 'b', 'kinds']) assert.deepEqual(q[k], l[k], k);
  assert.deepEqual(files(queued), files(local));
});

test('lego-experiment --queue: every row a job; experiment.json, report and model files as a local run', async () => {
  const models = [
    [1, 16],
    [2, 12],
  ].map(([seed, hidden]) => {
    const m = createZooModel('mlp', { hidden: [hidden!], input: [1, 28, 28], classes: 10, seed: seed! });
    setLabels(
      m,
      Array.from({ length: 10 }, (_, c) => ({ dataset: 'fashion-mnist', class: c })),
    );
    setInputSpec(m, { shape: [1, 28, 28], mean: [0.286], std: [0.353] });
    const f = join(dir, `mlp-${seed}.onnx`);
    saveModel(m, f);
    return f;
  });
  const [local, queued] = await both(
    [
      'lego-experiment',
      '--model',
      models[0]!,
      '--model2',
      models[1]!,
      '--data',
      'fashion-mnist-sample',
      '--tasks',
      '0;0-2',
      '--pairs',
      '0,1+2,3',
      '--samples',
      '5',
      '--unbalanced',
      '3-9',
      '--finetune-epochs',
      '1',
      '--alphas',
      '0.3',
      '--betas',
      '0.2',
      '--batch',
      '64',
    ],
    'lego',
  );
  const l = json(join(local, 'experiment.json')),
    q = json(join(queued, 'experiment.json'));
  assert.deepEqual(untimed(q), untimed(l));
  assert.ok(q['provenance'] && l['provenance'], 'both runs record their provenance');
  assert.equal((q['disassembly'] as unknown[]).length, 2);
  for (const sub of ['components', 'assembled']) {
    assert.deepEqual(files(join(queued, sub)), files(join(local, sub)), sub);
    for (const f of files(join(local, sub)))
      assert.ok(readFileSync(join(queued, sub, f)).equals(readFileSync(join(local, sub, f))), `${sub}/${f} has the same bytes`);
  }
  assert.ok(readFileSync(join(queued, 'report.md'), 'utf8').includes('## Disassembly'));
});

test('lineage-zoo --queue: every model a job after its parent; the same files byte for byte', async () => {
  const [local, queued] = await both(
    [
      'lineage-zoo',
      '--data',
      'fashion-mnist-sample',
      '--trees',
      '2',
      '--children',
      '2',
      '--depth',
      '1',
      '--hidden',
      '16',
      '--steps',
      '4',
      '--root-steps',
      '6',
      '--batch',
      '32',
      '--onnx',
    ],
    'zoo',
  );
  const names = files(local).filter((f) => f.endsWith('.safetensors'));
  assert.equal(names.length, 6);
  assert.deepEqual(files(queued), files(local));
  for (const f of [...names, ...files(join(local, 'onnx')).map((x) => `onnx/${x}`)]) {
    assert.ok(readFileSync(join(queued, f)).equals(readFileSync(join(local, f))), `${f} has the same bytes`);
  }
  assert.deepEqual(json(join(queued, 'truth.json')), json(join(local, 'truth.json')));
  const l = json(join(local, 'zoo.json')),
    q = json(join(queued, 'zoo.json'));
  assert.deepEqual(untimed(q['models']), untimed(l['models']));
  assert.deepEqual(q['settings'], l['settings']);
});
