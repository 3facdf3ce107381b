import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { createZooModel } from '../../src/nn/zoo.js';
import { saveModel } from '../../src/onnx/proto.js';
import { setInputSpec, setLabels } from '../../src/onnx/metadata.js';
import { runLegoExperiment, experimentMarkdown } from '../../src/lego/experiment.js';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

const dir = tempDir();

function baseModel(seed: number, hidden: number): string {
  const m = createZooModel('mlp', { hidden: [hidden], input: [1, 28, 28], classes: 10, seed });
  setLabels(
    m,
    Array.from({ length: 10 }, (_, c) => ({ dataset: 'fashion-mnist', class: c })),
  );
  setInputSpec(m, { shape: [1, 28, 28], mean: [0.286], std: [0.353] });
  const f = join(dir, `mlp-${seed}.onnx`);
  saveModel(m, f);
  return f;
}

test('lego-experiment writes every table and resumes without redoing rows', async () => {
  const m1 = baseModel(1, 32),
    m2 = baseModel(2, 24);
  const outDir = join(dir, 'exp');
  const opts = {
    model: m1,
    model2: m2,
    data: 'fashion-mnist-sample',
    outDir,
    tasks: [[0], [0, 1, 2]],
    pairs: [
      [
        [0, 1],
        [2, 3],
      ],
    ] as [number[], number[]][],
    samplesPerClass: 5,
    unbalanced: [3, 9] as [number, number],
    finetuneEpochs: 1,
    sweep: [
      { alpha: 0.3, beta: 0.2 },
      { alpha: 0.6, beta: 0.5 },
    ],
    batchSize: 64,
    session: { threads: 1 },
  };
  const r = await runLegoExperiment(opts);
  assert.equal(r.disassembly.length, 2);
  for (const d of r.disassembly) {
    assert.ok(d.componentParameters < d.baseParameters, 'components are smaller');
    assert.ok(d.componentAccuracy >= 0 && d.componentAccuracy <= 1);
    // k-way can only be easier than N-way: fewer classes to confuse
    assert.ok(d.baseKWay >= d.baseAccuracy, `base k-way ${d.baseKWay} vs N-way ${d.baseAccuracy}`);
  }
  assert.equal(r.disassembly[0]!.baseKWay, 1, "one class: the base's 1-way answer is always right");
  assert.equal(r.mismatch.length, 2);
  // a one-class component answers its class on every image, with softmax 1
  assert.equal(r.mismatch[0]!.own.accuracy, 1);
  assert.deepEqual(r.mismatch[0]!.others.share, { 0: 1 });
  assert.equal(r.mismatch[0]!.others.samples, 900, 'every test image of the nine other classes');
  assert.ok(Math.abs(r.mismatch[0]!.others.meanMaxSoftmax - 1) < 1e-9);
  // the seed's measure: the shares of predictions on other tasks' images sum to 1
  const m3 = r.mismatch[1]!;
  assert.deepEqual(Object.keys(m3.others.share), ['0', '1', '2']);
  assert.ok(Math.abs(Object.values(m3.others.share).reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert.equal(m3.others.samples, 700);
  assert.ok(m3.others.meanMaxSoftmax >= 1 / 3 && m3.others.meanMaxSoftmax <= 1);
  assert.ok(m3.own.meanMaxSoftmax >= 1 / 3 && m3.own.meanMaxSoftmax <= 1);
  assert.equal(r.assembly.length, 1);
  const a = r.assembly[0]!;
  assert.equal(a.baseAccuracy.length, 2);
  assert.equal(a.method, 'block-diagonal');
  assert.notEqual(a.finetuned, null);
  assert.notEqual(a.finetunedUnscaled, null);
  assert.equal(r.unbalanced.length, 1);
  assert.deepEqual(Object.keys(r.unbalanced[0]!.counts), ['0', '1', '2']);
  assert.ok(Object.values(r.unbalanced[0]!.counts).every((n) => n >= 3 && n <= 9));
  assert.equal(r.sweep.length, 2);
  assert.ok(r.sweep[1]!.parameters <= r.sweep[0]!.parameters, 'higher thresholds keep fewer parameters');
  const md = readFileSync(join(outDir, 'report.md'), 'utf8');
  for (const h of ['## Disassembly', '## Assembly', '## Mismatch', '## Unbalanced', '## Threshold sweep']) assert.ok(md.includes(h), h);
  assert.equal(md, experimentMarkdown(r));
  assert.ok(!experimentMarkdown({ ...r, sweep: [] }).includes('## Threshold sweep'), 'no sweep (--no-sweep): no empty table');
  const comp = join(outDir, 'components', 'm1-0-2.onnx');
  assert.ok(existsSync(comp));
  // resuming finds every row done: nothing is measured again (the timings would differ)
  const again = await runLegoExperiment({ ...opts, resume: true });
  const { provenance, ...saved } = JSON.parse(readFileSync(join(outDir, 'experiment.json'), 'utf8'));
  assert.ok(provenance, 'experiment.json carries the provenance block');
  assert.deepEqual(again, saved);
  assert.deepEqual(again.disassembly, r.disassembly);
  assert.deepEqual(again.assembly, r.assembly);
});

test('lego-experiment CLI: bad --pairs and --unbalanced are one-line errors', () => {
  const m1 = baseModel(3, 8);
  const bad = runCli(['lego-experiment', '--model', m1, '--data', 'fashion-mnist-sample', '--pairs', '0-1', '-o', join(dir, 'bad')]);
  assert.ok(isOneLineError(bad), bad.stderr);
  assert.match(bad.stderr, /--pairs expects "A\+B"/);
  const unb = runCli(['lego-experiment', '--model', m1, '--data', 'fashion-mnist-sample', '--unbalanced', '9-3', '-o', join(dir, 'bad')]);
  assert.ok(isOneLineError(unb), unb.stderr);
  assert.match(unb.stderr, /--unbalanced expects lo-hi/);
});
