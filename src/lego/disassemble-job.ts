/**
 * What `modelsmith disassemble` does, as a library call: open the model and the data, cut
 * the component, save it (and its masks), and score base and component on the task's test
 * images like with like (base N-way, base k-way, component k-way).
 *
 * @example
 *   const r = await runDisassembleJob({ file: 'vgg.onnx', data: 'fashion-mnist', task: [0, 1, 2], output: 'vgg-0-2.onnx' });
 *   console.log(r.base.kWay.accuracy, r.component.accuracy, r.component.parameters);
 */
import { openModel } from '../onnx/open.js';
import { saveModel } from '../onnx/proto.js';
import { fileHash } from '../onnx/metadata.js';
import { modelStats } from '../onnx/stats.js';
import { openDataset } from '../data/resolve.js';
import { resolveNormalization } from '../runtime/normalization.js';
import { disassemble, saveMasks } from './disassemble.js';
import { scoreTask, type TaskScore } from './score.js';
import type { Component, DisassembleOptions } from './types.js';
import type { Dataset } from '../data/types.js';
import type { Model } from '../onnx/types.js';
import { apiName, type OptionNamer } from '../util/errors.js';
import { compact, pct, table } from '../util/format.js';

export interface DisassembleJob extends Omit<DisassembleOptions, 'task' | 'file' | 'parentHash'> {
  /** the parent model file */
  file: string;
  /** dataset spec: its train split chooses samples, its test split scores */
  data: string;
  /** the task's classes (dataset class ids) */
  task: number[];
  /** where the component is written */
  output: string;
  /** also write the masks here (JSON) */
  masks?: string;
  /** the train split of `data`, when the caller has it open already */
  trainSet?: Dataset;
  /** the model of `file`, when the caller has it open already */
  parent?: Model;
}

export interface DisassembleJobResult {
  output: string;
  task: number[];
  seconds: number;
  /** the parent on the task's test images: N-way accuracy and per class, k-way score, size */
  base: { accuracy: number; perClass: TaskScore['nWay']['perClass']; kWay: TaskScore['kWay']; parameters: number; flopsPerImage: number };
  /** the component's k-way accuracy on the same images, and its size */
  component: { accuracy: number; perClass: TaskScore['kWay']['perClass']; parameters: number; flopsPerImage: number };
  /** component k-way minus base k-way */
  change: number;
  samples: number;
  /** the test split's source line */
  data: string;
  thresholds: Component['masks']['thresholds'];
  samplesPerClass: Component['masks']['samples'];
  flatten: Component['masks']['flatten'];
  ranking: NonNullable<DisassembleOptions['ranking']>;
  recalibration: Component['recalibration'];
  validation?: Component['validation'];
  search?: Component['search'];
  normalization: Component['normalization'];
  warnings: string[];
  masks?: string;
  /** the parent's output count (for a "base (N-way)" label) */
  outputs: number | string;
}

/**
 * `modelsmith disassemble` as a call: the component written to `output`, and what the
 * command prints, as data.
 *
 * @example
 *   const r = await runDisassembleJob({ file: 'vgg.onnx', data: 'fashion-mnist', task: [0, 1, 2], output: 'vgg-0-2.onnx' });
 *   console.log(`${r.component.accuracy} vs base k-way ${r.base.kWay.accuracy}`);
 */
export async function runDisassembleJob(job: DisassembleJob): Promise<DisassembleJobResult> {
  const { file, data, output, masks, trainSet, parent, ...opts } = job;
  const model = parent ?? openModel(file);
  const train = trainSet ?? (await openDataset(data, 'train'));
  const started = Date.now();
  const c = await disassemble(model, train, { ...opts, file, parentHash: fileHash(file) });
  const seconds = (Date.now() - started) / 1000;
  saveModel(c.model, output);
  if (masks) saveMasks(c.masks, masks);
  const test = await openDataset(data, 'test');
  const norm = { ...(opts.mean ? { mean: opts.mean } : {}), ...(opts.std ? { std: opts.std } : {}) };
  const scoreOpts = {
    task: job.task,
    ...(opts.session ? { session: opts.session } : {}),
    normalization: resolveNormalization(model, test.shape[0], norm, { file }).normalization,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
  };
  const base = await scoreTask(model, test, { ...scoreOpts, file, label: 'eval base' });
  const comp = await scoreTask(c.model, test, { ...scoreOpts, file: output, label: 'eval component' });
  const s0 = modelStats(model);
  const s1 = modelStats(c.model);
  return {
    output,
    task: c.task,
    seconds,
    base: { accuracy: base.nWay.accuracy, perClass: base.nWay.perClass, kWay: base.kWay, parameters: s0.parameters, flopsPerImage: s0.flopsPerImage },
    component: { accuracy: comp.kWay.accuracy, perClass: comp.kWay.perClass, parameters: s1.parameters, flopsPerImage: s1.flopsPerImage },
    change: comp.kWay.accuracy - base.kWay.accuracy,
    samples: comp.samples,
    data: test.source,
    thresholds: c.masks.thresholds,
    samplesPerClass: c.masks.samples,
    flatten: c.masks.flatten,
    ranking: opts.ranking ?? 'float32',
    recalibration: c.recalibration,
    ...(c.validation ? { validation: c.validation } : {}),
    ...(c.search ? { search: c.search } : {}),
    normalization: c.normalization,
    warnings: c.warnings,
    ...(masks ? { masks } : {}),
    outputs: s0.outputs[0]?.shape?.[1] ?? '?',
  };
}

/**
 * What a disassembly did, as text: the component against the base (accuracy, size), the
 * images it was scored on, recalibration, the held-out check and the threshold search.
 * Options are named by `name` (the API's keys by default).
 *
 * @example console.log(disassembleText(await runDisassembleJob(job)));
 */
export function disassembleText(r: DisassembleJobResult, name: OptionNamer = apiName): string {
  const n = r.outputs;
  const k = r.task.length;
  const change = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
  const lines = [
    `wrote ${r.output}: component for classes ${r.task.join(',')} (${r.seconds.toFixed(1)} s)${r.masks ? `; masks in ${r.masks}` : ''}`,
    table([
      ['model', 'accuracy on task images', 'vs base k-way', 'parameters', 'FLOPs/image'],
      [`base (${n}-way)`, pct(r.base.accuracy), '', compact(r.base.parameters), compact(r.base.flopsPerImage)],
      [`base (${k}-way: logits of the task's classes)`, pct(r.base.kWay.accuracy), '', '', ''],
      [`component (${k}-way)`, pct(r.component.accuracy), change(r.change), compact(r.component.parameters), compact(r.component.flopsPerImage)],
    ]),
    `scored on ${r.samples} test images of classes ${r.task.join(',')} (${r.data})`,
    `recalibration: ${recalibrationLine(r.recalibration)}`,
  ];
  if (r.validation) {
    const v = r.validation;
    const relaxed = v.relaxed.length
      ? `; relaxed the masks of class${v.relaxed.length > 1 ? 'es' : ''} ${v.relaxed.map((c) => `${c.class} (${pct(c.before)} -> ${pct(c.after)})`).join(', ')}`
      : '; no class collapsed';
    lines.push(`held-out check on ${v.samples} training images: component ${pct(v.component.accuracy)} vs base ${pct(v.base.accuracy)} k-way${relaxed}`);
  }
  if (r.search) {
    const s = r.search;
    const ch = s.candidates[s.chosen]!;
    const t = ch.thresholds;
    lines.push(
      `${s.kind === 'guard' ? `guard: the reference thresholds were more than ${s.maxDrop} below the base; lowered to` : `${name('maxDrop', s.maxDrop)}:`} thresholds x${ch.scale.toFixed(3)} (conv ${t.alphaConv.toFixed(3)}/${t.betaConv.toFixed(3)}, linear ${t.alphaLinear.toFixed(3)}/${t.betaLinear.toFixed(3)}), ${pct(ch.accuracy)} on held-out images vs base ${pct(s.baseAccuracy)}; ${s.candidates.length} candidates tried`,
    );
  }
  if (r.warnings.length) lines.push(`${r.warnings.length} warning(s), see above`);
  return lines.join('\n');
}

/** What recalibration did, in one line. */
function recalibrationLine(r: Component['recalibration']): string {
  if (r.skipped) return `${r.mode}: nothing done (${r.skipped})`;
  if (r.mode === 'batchnorm') return `BatchNorm statistics of ${r.batchNormLayers} layer(s) re-estimated on ${r.samples} training images`;
  return `${r.layers.length} layer(s) that lost input channels mapped to the parent's per-channel output statistics on ${r.samples} training images`;
}
