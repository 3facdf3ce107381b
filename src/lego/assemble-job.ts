/**
 * What `modelsmith assemble` does, as a library call: load component files, assemble
 * them (scaled unless told not to), optionally fine-tune, save, and score every
 * component and the assembled model on the test split of each dataset involved.
 *
 * @example
 *   const r = await runAssembleJob({ files: ['a.onnx', 'b.onnx'], data: ['fashion-mnist'], output: 'ab.onnx' });
 *   console.log(r.union.map((u) => u.accuracy));
 */
import type { ScaleMethod } from './scale.js';
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { openModel } from '../onnx/open.js';
import { saveModel } from '../onnx/proto.js';
import { fileHash, getLabels } from '../onnx/metadata.js';
import { modelStats } from '../onnx/stats.js';
import { openDataset } from '../data/resolve.js';
import { evaluate } from '../runtime/evaluate.js';
import { sameDataset } from '../runtime/labels.js';
import type { SessionOptions } from '../runtime/session.js';
import { assemble, componentLabels, withNormalization, type AssembleResult, type AssemblyMethod, type OverlapMode } from './assemble.js';
import { finetuneAssembled } from './finetune.js';
import type { EpochMetrics } from '../autodiff/train.js';
import { apiName, OptionError, UserError, type OptionNamer } from '../util/errors.js';
import { compact, pct, table } from '../util/format.js';

export interface AssembleJob {
  files: string[];
  output: string;
  /** dataset specs for scaling (train split); default: `data` */
  scaleData?: string[];
  /** false: assemble without parameter scaling */
  scale?: boolean;
  scaleSamplesPerClass?: number;
  /** how scale factors are found (default DEFAULT_SCALE_METHOD, see AssembleOptions) */
  scaleMethod?: ScaleMethod;
  /** dataset specs: training data for fine-tuning, and test data for the accuracies */
  data?: string[];
  finetuneEpochs?: number;
  lr?: number;
  batchSize?: number;
  seed?: number;
  overlap?: OverlapMode;
  method?: 'auto' | AssemblyMethod;
  /** score on the test splits (default true when data is known) */
  test?: boolean;
  session?: SessionOptions;
  /** input normalisation of components that carry none in their metadata (--mean/--std) */
  normalization?: { mean?: number[]; std?: number[] };
}

export interface Accuracy {
  /** which model: a component file, or 'assembled' */
  model: string;
  dataset: string;
  classes: number[];
  accuracy: number;
  samples: number;
}

export interface AssembleJobResult {
  output: string;
  method: AssemblyMethod;
  fallbackReason?: string;
  outputs: number;
  labels: { dataset: string; class: number }[];
  scaled: boolean;
  scaleMethod: ScaleMethod | null;
  scaleFactors: (number[] | null)[];
  /** 'fit' scaling: the shift added to each output, per component */
  scaleShifts?: (number[] | null)[];
  calibration?: AssembleResult['calibration'];
  warnings: string[];
  parameters: number;
  flopsPerImage: number;
  /** each component on its own classes (k-way), test split */
  components: Accuracy[];
  /** the assembled model on the union of classes, per dataset, before fine-tuning */
  union: Accuracy[];
  finetune?: { epochs: EpochMetrics[]; data: string; union: Accuracy[] };
}

/**
 * What `modelsmith assemble` does: opens the components, assembles, optionally scales and fine-tunes, scores and saves.
 *
 * @example
 *   const r = await runAssembleJob({ files: ['c01.onnx', 'c23.onnx'], output: 'c0123.onnx', data: ['fashion-mnist'], test: true });
 */
export async function runAssembleJob(job: AssembleJob): Promise<AssembleJobResult> {
  if (job.files.length === 0) throw new UserError('assemble: give at least one component .onnx file');
  // components without normalisation metadata get --mean/--std written in, so that scaling, scoring and
  // fine-tuning all feed them alike (assemble warns about those left without any)
  const models = job.files.map((f) => withNormalization(openModel(f), f, job.normalization).model);
  models.forEach((m, k) => componentLabels(m, job.files[k]!));
  const scale = job.scale ?? true;
  const scaleSpecs = job.scaleData?.length ? job.scaleData : (job.data ?? []);
  if (scale && scaleSpecs.length === 0)
    throw new OptionError((o) => `parameter scaling needs data: pass ${o('scaleData', '<spec>')} (its train split is used), or ${o('scale', false)}`);
  if (job.finetuneEpochs && !job.data?.length) throw new OptionError((o) => `${o('finetuneEpochs')} needs ${o('data', '<spec>')} for the training images`);
  const scaleSets = scale ? await openAll(scaleSpecs, 'train') : [];
  const r: AssembleResult = await assemble(
    models.map((model, k) => ({ model, file: job.files[k]!, hash: fileHash(job.files[k]!) })),
    {
      ...(scale ? { scaleData: scaleSets } : {}),
      ...(job.scaleSamplesPerClass ? { scaleSamplesPerClass: job.scaleSamplesPerClass } : {}),
      ...(job.scaleMethod ? { scaleMethod: job.scaleMethod } : {}),
      ...(job.seed !== undefined ? { seed: job.seed } : {}),
      ...(job.overlap ? { overlap: job.overlap } : {}),
      ...(job.method ? { method: job.method } : {}),
      ...(job.batchSize ? { batchSize: job.batchSize } : {}),
      ...(job.session ? { session: job.session } : {}),
      ...(job.normalization ? { normalization: job.normalization } : {}),
    },
  );
  saveModel(r.model, job.output);
  const testSpecs = job.data?.length ? job.data : scaleSpecs;
  const tests = job.test === false ? [] : await openAll(testSpecs, 'test');
  const components: Accuracy[] = [];
  for (let k = 0; k < models.length; k++) components.push(...(await scoreByDataset(models[k]!, job.files[k]!, tests, job.session)));
  const union = await scoreByDataset(r.model, 'assembled', tests, job.session);
  const stats = modelStats(r.model);
  const result: AssembleJobResult = {
    output: job.output,
    method: r.method,
    ...(r.fallbackReason ? { fallbackReason: r.fallbackReason } : {}),
    outputs: r.labels.length,
    labels: r.labels.map((l) => ({ dataset: l.dataset, class: l.class })),
    scaled: scale,
    scaleMethod: r.scales.find((s) => s)?.method ?? null,
    scaleFactors: r.scales.map((s) => s?.factors ?? null),
    ...(r.scales.some((s) => s?.shifts) ? { scaleShifts: r.scales.map((s) => s?.shifts ?? null) } : {}),
    ...(r.calibration ? { calibration: r.calibration } : {}),
    warnings: r.warnings,
    parameters: stats.parameters,
    flopsPerImage: stats.flopsPerImage,
    components,
    union,
  };
  if (job.finetuneEpochs) {
    const trainSets = await openAll(job.data!, 'train');
    const ft = await finetuneAssembled(r.model, trainSets, {
      epochs: job.finetuneEpochs,
      output: job.output,
      ...(job.lr ? { lr: job.lr } : {}),
      ...(job.batchSize ? { batchSize: job.batchSize } : {}),
      ...(job.seed !== undefined ? { seed: job.seed } : {}),
      ...(job.session ? { session: job.session } : {}),
    });
    result.finetune = { epochs: ft.epochs, data: ft.data, union: await scoreByDataset(ft.model, 'assembled+finetuned', tests, job.session) };
  }
  return result;
}

async function openAll(specs: readonly string[], split: 'train' | 'test'): Promise<Dataset[]> {
  const out: Dataset[] = [];
  for (const s of specs) out.push(await openDataset(s, split));
  return out;
}

/** Accuracy of `model` on the test images of its classes, one entry per dataset it has classes of. */
export async function scoreByDataset(model: Model, name: string, tests: readonly Dataset[], session?: SessionOptions): Promise<Accuracy[]> {
  const labels = getLabels(model) ?? [];
  const out: Accuracy[] = [];
  for (const ds of tests) {
    const classes = [...new Set(labels.filter((l) => sameDataset(l.dataset, ds.name) && l.class < ds.classes).map((l) => l.class))].sort((a, b) => a - b);
    if (!classes.length) continue;
    const e = await evaluate(model, ds, { ...session, classes, file: name });
    out.push({ model: name, dataset: ds.name, classes, accuracy: e.accuracy, samples: e.samples });
  }
  return out;
}

/**
 * What an assembly did, as text: the method, size and scaling of the assembled model, and
 * a table of each component's and the assembled model's test accuracies. Options are
 * named by `name` (the API's keys by default).
 *
 * @example console.log(assembleText(await runAssembleJob({ files: ['a.onnx', 'b.onnx'], output: 'ab.onnx', data: ['fashion-mnist'] })));
 */
export function assembleText(r: AssembleJobResult, name: OptionNamer = apiName): string {
  const head = `wrote ${r.output}: ${r.method}${r.fallbackReason ? ` (${r.fallbackReason})` : ''}, ${r.outputs} outputs, ${compact(r.parameters)} parameters, ${(r.flopsPerImage / 1e6).toFixed(2)} MFLOPs/image, ${r.scaled ? `scaled (${r.scaleMethod})` : 'not scaled'}`;
  const rows: (string | number)[][] = [['model', 'dataset', 'classes', 'test images', 'accuracy']];
  const fmt = (c: number[]): string => (c.length > 6 ? `${c.slice(0, 6).join(',')},... (${c.length})` : c.join(','));
  for (const a of [...r.components, ...r.union, ...(r.finetune?.union ?? [])]) rows.push([a.model, a.dataset, fmt(a.classes), a.samples, pct(a.accuracy)]);
  return `${head}\n${rows.length > 1 ? table(rows) : `no test data given (${name('data')}): accuracies not measured`}`;
}
