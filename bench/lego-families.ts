/**
 * Model LEGO on full-size torchvision exports (tools/torch/export_torchvision.py writes
 * them to /tmp/tv): for each model, disassemble tasks 0-4 and 5-9 on Fashion-MNIST
 * images made RGB and resized to the model's input (a dataset view, as `--fit` makes
 * it), assemble the two components with
 * parameter scaling, and check that the assembled logits equal the scaled components'
 * logits side by side. Prints parameters before/after, the assembly method, the largest
 * difference and the seconds of each step. The models are untrained exports: accuracies
 * mean nothing here; this shows that every family goes through and stays exact.
 *
 * `node dist/bench/lego-families.js [/tmp/tv/*.onnx] [--data fashion-mnist] [--images 40] [--samples 5] [--json]`
 */
import { readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Dataset } from '../src/data/types.js';
import type { Model } from '../src/onnx/types.js';
import { loadModel } from '../src/onnx/proto.js';
import { modelStats } from '../src/onnx/stats.js';
import { openDataset } from '../src/data/resolve.js';
import { formatDataSpec } from '../src/data/view.js';
import { disassemble } from '../src/lego/disassemble.js';
import { assemble } from '../src/lego/assemble.js';
import { ModelSession } from '../src/runtime/session.js';
import { Rng } from '../src/util/random.js';
import { setQuiet } from '../src/util/progress.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const json = args.includes('--json');
const files = args.filter((a, i) => a.endsWith('.onnx') && !args[i - 1]?.startsWith('--'));
const models = files.length
  ? files
  : readdirSync('/tmp/tv')
      .filter((f) => f.endsWith('.onnx'))
      .sort()
      .map((f) => join('/tmp/tv', f));
const perClass = Number(opt('--images', '40'));
const samples = Number(opt('--samples', '5'));
setQuiet(true);

/** The first `perClass` images of each class, as a dataset (keeps the run short). */
function firstPerClass(ds: Dataset, perClass: number): Dataset {
  const picked: number[] = [];
  const count = new Array<number>(ds.classes).fill(0);
  for (let i = 0; i < ds.size && picked.length < perClass * ds.classes; i++) if (count[ds.label(i)]!++ < perClass) picked.push(i);
  return {
    name: ds.name,
    split: ds.split,
    classes: ds.classes,
    size: picked.length,
    shape: ds.shape,
    source: `${ds.source}, first ${perClass} images per class`,
    ...(ds.classNames ? { classNames: ds.classNames } : {}),
    label: (i: number) => ds.label(picked[i]!),
    read: (indices: readonly number[], out: Float32Array) =>
      ds.read(
        indices.map((i) => picked[i]!),
        out,
      ),
  };
}

async function logits(model: Model, x: { dims: number[]; data: Float32Array }): Promise<Float32Array> {
  const s = await ModelSession.create(model, { threads: 1 });
  try {
    return (await s.run({ [model.graph.inputs[0]!.name]: x }))[model.graph.outputs[0]!.name]!.data as Float32Array;
  } finally {
    await s.release();
  }
}

const spec = opt('--data', 'fashion-mnist-sample');
const rows: Record<string, unknown>[] = [];
const log = (s: string): void => {
  if (!json) console.log(s);
};
log(`${spec}: ${perClass} images per class, ${samples} representative samples per class; tasks 0-4 and 5-9; times on this machine, untrained models`);
log('| model | parameters | component 0-4 | component 5-9 | assembled | method | max diff | seconds (disassemble, disassemble, assemble) |');
log('|---|---|---|---|---|---|---|---|');
for (const file of models) {
  const name = basename(file, '.onnx');
  const row: Record<string, unknown> = { model: name };
  try {
    const model = loadModel(file);
    const size = model.graph.inputs[0]!.shape![2] as number;
    // the images made RGB and resized to the model's input (a dataset view, as --fit does)
    const view = formatDataSpec(spec, { size: [size, size], channels: 3 });
    const train = firstPerClass(await openDataset(view, 'train', { announce: false }), perClass);
    row['parameters'] = modelStats(model).parameters;
    const parts: Model[] = [];
    const seconds: number[] = [];
    for (const task of [
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8, 9],
    ]) {
      const t0 = performance.now();
      const c = await disassemble(model, train, { task, samplesPerClass: samples, recalibrationSamples: 64, label: '' });
      seconds.push((performance.now() - t0) / 1000);
      parts.push(c.model);
    }
    const t0 = performance.now();
    const r = await assemble(
      parts.map((m, k) => ({ model: m, file: `${name}-${k}` })),
      { scaleData: [train], scaleSamplesPerClass: perClass },
    );
    seconds.push((performance.now() - t0) / 1000);
    // the assembled logits must be the components' logits times their scale factors, side by side
    const rng = new Rng(1);
    const x = { dims: [2, 3, size, size], data: Float32Array.from({ length: 2 * 3 * size * size }, () => rng.normal()) };
    const outs = await Promise.all(parts.map((m) => logits(m, x)));
    const got = await logits(r.model, x);
    const widths = outs.map((o) => o.length / 2);
    let worst = 0;
    let p = 0;
    for (let b = 0; b < 2; b++) {
      outs.forEach((o, k) => {
        for (let j = 0; j < widths[k]!; j++) {
          const want = o[b * widths[k]! + j]! * (r.scales[k]?.factors[j] ?? 1);
          worst = Math.max(worst, Math.abs(got[p++]! - want) / Math.max(1, Math.abs(want)));
        }
      });
    }
    Object.assign(row, {
      components: parts.map((m) => modelStats(m).parameters),
      assembled: modelStats(r.model).parameters,
      method: r.method,
      maxDiff: worst,
      seconds,
    });
    const comps = row['components'] as number[];
    log(
      `| ${name} | ${fmt(row['parameters'] as number)} | ${fmt(comps[0]!)} | ${fmt(comps[1]!)} | ${fmt(row['assembled'] as number)} | ${r.method} | ${worst.toExponential(1)} | ${seconds.map((s) => s.toFixed(0)).join(', ')} |`,
    );
  } catch (e) {
    row['error'] = (e as Error).message;
    log(`| ${name} | failed: ${(e as Error).message} |`);
  }
  rows.push(row);
}
if (json) console.log(JSON.stringify({ data: spec, perClass, samples, rows }, null, 2));

function fmt(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n);
}
