/**
 * The lineage zoo maker: families of models made by really training them. Each root is
 * a fresh zoo model trained from its own seed; each descendant is fine-tuned from its
 * parent with its own seed, task (a class subset, or a label permutation) and learning
 * rate, fully or with LoRA adapters that are merged back (rank(W_child - W_parent) <= r).
 * Writes `<name>.safetensors` per model, `truth.json` ({"edges": [[parent, child], ...]})
 * and `zoo.json` (settings and every model's record). Resumable: a model whose file
 * exists is read back, not retrained.
 *
 * @example
 *   const r = await makeLineageZoo({ data: 'fashion-mnist', outDir: 'runs/zoo/ft-s1', trees: 3, children: 4, depth: 2, seed: 1 });
 *   console.log(r.models.length, r.edges.length); // 63 60
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../../onnx/types.js';
import { cloneModel } from '../../onnx/graph.js';
import { saveModel } from '../../onnx/proto.js';
import { setInputSpec, setLabels, type OutputLabel } from '../../onnx/metadata.js';
import { createZooModel } from '../../nn/zoo.js';
import { openDataset } from '../../data/resolve.js';
import { defaultNormalization } from '../../data/known.js';
import type { Dataset, Normalization } from '../../data/types.js';
import { selectTrainable } from '../../autodiff/freeze.js';
import type { SessionOptions } from '../../runtime/session.js';
import { writeJsonAtomic } from '../../util/atomic.js';
import { Rng, hashSeed } from '../../util/random.js';
import { info } from '../../util/progress.js';
import { pct } from '../../util/format.js';
import { OptionError, UserError } from '../../util/errors.js';
import { zooSettings, checkPruneFraction, type LineageZooOptions, type ZooSettings } from './options.js';
import { planZoo, plannedSeed, taskOf, truthEdges, type PlannedModel, type ZooTask } from './plan.js';
import { addLora, classifierParams, loraTargets, mergeLora } from './lora.js';
import { trainSteps, taskAccuracy } from './steps.js';
import { loadZooModel, readZooRecord, saveZooModel } from './store.js';
import { makeZooVariant, type VariantResult } from './variants.js';
import { writeHfZoo, type HfZooResult } from './hf.js';

/** One model of a zoo, as recorded in zoo.json and in its file's metadata. */
export interface ZooModelRecord {
  name: string;
  tree: number;
  /** child indices from the root joined by dots: "" for a root, "2.0" for its third child's first child */
  path: string;
  depth: number;
  parent: string | null;
  seed: number;
  task: ZooTask;
  lr: number;
  steps: number;
  batchSize: number;
  /** LoRA rank, null for full training */
  rank: number | null;
  /** weights adapted with LoRA (null for full training) */
  loraLayers: string[] | null;
  /** parameter tensors trained (LoRA: the adapted weights' factors are merged into these) */
  trained: string[];
  testAccuracy: number;
  trainLoss: number;
  /** wall time to train and score it (null when found on disk: files hold no timings, so the same seed gives the same bytes) */
  seconds: number | null;
}

export interface LineageZooResult {
  outDir: string;
  settings: ZooSettings;
  models: ZooModelRecord[];
  edges: [string, string][];
  /** models trained by this call (the rest were found on disk) */
  trained: number;
  reused: number;
  seconds: number;
  variants: VariantResult[];
  /** the Hugging Face folders, when asked for */
  hf?: HfZooResult;
}

/**
 * Where a zoo's models are made: in this process (the default), or by queue workers on
 * other machines (src/queue/zoo.ts). Everything else (resuming, zoo.json, truth.json,
 * the variants) is the same for both.
 */
export interface ZooMaker {
  /** the dataset's class count (the plan depends on it) and its source lines for zoo.json */
  data(s: ZooSettings): Promise<{ classes: number; train: string; test: string }>;
  /**
   * Makes the models of `todo` (in plan order; a model's parent is either made first or
   * its record is in `records` and its file in the zoo folder already), writes each as
   * `<outDir>/<name>.safetensors` and calls `made` with its record as soon as it is written.
   */
  make(todo: readonly PlannedModel[], plan: readonly PlannedModel[], records: Map<string, ZooModelRecord>, made: (r: ZooModelRecord) => void): Promise<void>;
}

/**
 * Makes a model zoo with known lineage by really training the models (roots, fine-tuned children, variants) and writes its truth.
 *
 * @example
 *   const zoo = await makeLineageZoo({ data: 'fashion-mnist-sample', outDir: 'zoo', trees: 2, children: 2, depth: 2 });
 */
export async function makeLineageZoo(o: LineageZooOptions, maker?: ZooMaker): Promise<LineageZooResult> {
  const start = Date.now();
  const s = zooSettings(o);
  const pruneFraction = checkPruneFraction(o.pruneFraction ?? 0.2);
  const previous = checkResume(o.outDir, s);
  const m = maker ?? localMaker(o);
  const data = await m.data(s);
  const plan = planZoo(s, data.classes);
  const records = new Map<string, ZooModelRecord>();
  const write = (): void => writeZooJson(o.outDir, s, data, plan, records);
  write();
  const todo: PlannedModel[] = [];
  for (const [i, pm] of plan.entries()) {
    const file = join(o.outDir, `${pm.name}.safetensors`);
    const found = existsSync(file) ? readZooRecord<ZooModelRecord>(file) : undefined;
    if (!found) {
      todo.push(pm);
      continue;
    }
    if (found.name !== pm.name || found.seed !== pm.seed || found.parent !== pm.parent) {
      throw new UserError(`${file} was made by a different zoo (its record says ${found.name}, seed ${found.seed}); use another output folder`);
    }
    records.set(pm.name, { ...found, seconds: previous.get(pm.name)?.seconds ?? null });
    info(`[${i + 1}/${plan.length}] ${pm.name}: found ${file}, not retrained`);
  }
  let trained = 0;
  await m.make(todo, plan, records, (r) => {
    records.set(r.name, r);
    trained++;
    write();
  });
  const edges = truthEdges(plan);
  writeJsonAtomic(join(o.outDir, 'truth.json'), { edges });
  const variants = (o.variants ?? []).map((kind) => makeZooVariant(o.outDir, `${o.outDir.replace(/\/+$/, '')}-${kind}`, kind, { fraction: pruneFraction }));
  const hfOptions = o.hfShardBytes !== undefined ? { maxShardBytes: o.hfShardBytes } : {};
  const hf = o.hf ? writeHfZoo(o.outDir, `${o.outDir.replace(/\/+$/, '')}-hf`, hfOptions) : undefined;
  return {
    outDir: o.outDir,
    settings: s,
    models: plan.map((pm) => records.get(pm.name)!),
    edges,
    trained,
    reused: plan.length - trained,
    seconds: (Date.now() - start) / 1000,
    variants,
    ...(hf ? { hf } : {}),
  };
}

/** Models made one after another in this process, each parent kept in memory until its last child is made. */
function localMaker(o: LineageZooOptions): ZooMaker {
  let ctx: ZooContext | undefined;
  return {
    async data(s) {
      ctx = await openZooContext(o, s);
      return { classes: ctx.trainData.classes, train: ctx.trainData.source, test: ctx.testData.source };
    },
    async make(todo, plan, records, made) {
      const c = { ...ctx!, records };
      for (const pm of todo) {
        const i = plan.indexOf(pm);
        made(await makeModel(c, pm, join(o.outDir, `${pm.name}.safetensors`), `[${i + 1}/${plan.length}] ${pm.name}`));
        releaseFinished(c, plan, i);
      }
    },
  };
}

/**
 * What making a zoo's models needs: the datasets (opened by `open`), the architecture
 * template, the normalisation, and the models and records made so far.
 */
export async function openZooContext(o: LineageZooOptions, s: ZooSettings, open: typeof openDataset = openDataset): Promise<ZooContext> {
  const session: SessionOptions = { ...(o.threads ? { threads: o.threads } : {}), ...(o.provider ? { provider: o.provider } : {}) };
  const trainData = await open(s.data, 'train');
  const testData = await open(s.data, 'test');
  const template = createZooModel(s.arch, zooModelOptions(s, trainData, 0));
  if (s.lowrank) checkLoraFits(template, s);
  const normalization = defaultNormalization(trainData.name.replace(/-sample$/, ''), trainData.shape[0]);
  return { s, o, session, trainData, testData, template, normalization, loaded: new Map(), records: new Map() };
}

export interface ZooContext {
  s: ZooSettings;
  o: LineageZooOptions;
  session: SessionOptions;
  trainData: Dataset;
  testData: Dataset;
  template: Model;
  normalization: Normalization;
  /** models kept in memory while they still have children to train */
  loaded: Map<string, Model>;
  records: Map<string, ZooModelRecord>;
}

function zooModelOptions(s: ZooSettings, ds: Dataset, seed: number): Parameters<typeof createZooModel>[1] {
  const vit = s.vit ? { patch: s.vit.patch, layers: s.vit.layers, heads: s.vit.heads, mlp: s.vit.mlp, hidden: [s.vit.hidden] } : {};
  return { input: [...ds.shape], classes: ds.classes, width: s.width, seed, ...(s.hidden ? { hidden: s.hidden } : {}), ...vit };
}

export async function makeModel(ctx: ZooContext, m: PlannedModel, file: string, label: string): Promise<ZooModelRecord> {
  const { s } = ctx;
  const parentRecord = m.parent === null ? null : ctx.records.get(m.parent)!;
  const base = m.parent === null ? createZooModel(s.arch, zooModelOptions(s, ctx.trainData, m.seed)) : parentModel(ctx, m.parent, m.tree);
  const { model: final, record } = await trainZooModel({
    settings: s,
    planned: m,
    base,
    parentTask: parentRecord?.task ?? null,
    trainData: ctx.trainData,
    testData: ctx.testData,
    normalization: ctx.normalization,
    session: ctx.session,
    label,
  });
  saveZooModel(file, final, { ...record, seconds: null });
  if (ctx.o.onnx) saveModel(final, join(ctx.o.outDir, 'onnx', `${m.name}.onnx`));
  ctx.loaded.set(m.name, final);
  return record;
}

/** Everything one zoo model's training needs; nothing is read from or written to disk. */
export interface ZooModelJob {
  settings: ZooSettings;
  planned: PlannedModel;
  /** a fresh zoo model for a root, the trained parent for a descendant */
  base: Model;
  /** the parent's task (its class->output mapping is inherited), null for a root */
  parentTask: ZooTask | null;
  trainData: Dataset;
  testData: Dataset;
  normalization: Normalization;
  session?: SessionOptions;
  /** progress label */
  label: string;
}

/**
 * Trains one zoo model from its base: fully, or with LoRA adapters on loraTargets(base)
 * (plus the classifier) that are merged back. Returns the plain model (same
 * architecture as `base`, labels and input spec set) and its record, test accuracy
 * included. Deterministic given the job.
 */
export async function trainZooModel(job: ZooModelJob): Promise<{ model: Model; record: ZooModelRecord }> {
  const { settings: s, planned: m, base, label } = job;
  const start = Date.now();
  const task = taskOf(m, job.trainData.classes, job.parentTask?.outputOf ?? null);
  let model = base;
  let trainable: string[];
  let lora: ReturnType<typeof addLora> | undefined;
  if (m.rank !== null) {
    lora = addLora(base, loraTargets(base), m.rank, new Rng(hashSeed(m.seed, 'lora')));
    model = lora.model;
    trainable = [...lora.adapters.flatMap((a) => [a.a, a.b]), ...classifierParams(base)];
  } else {
    trainable = selectTrainable(base.graph);
  }
  const r = await trainSteps({
    model,
    trainable,
    data: job.trainData,
    task,
    steps: m.steps,
    batchSize: s.batchSize,
    lr: m.lr,
    weightDecay: m.parent === null ? s.rootWeightDecay : 0,
    seed: m.seed,
    normalization: job.normalization,
    ...(job.session ? { session: job.session } : {}),
    label,
  });
  let final: Model;
  if (lora) {
    final = cloneModel(base);
    const merged = mergeLora(lora.model, r.params, lora.adapters);
    for (const name of [...classifierParams(base), ...merged.keys()]) {
      const t = base.graph.initializers.get(name)!;
      final.graph.initializers.set(name, { dtype: 'float32', dims: [...t.dims], data: merged.get(name) ?? r.params.get(name)! });
    }
    // running statistics (BatchNorm archs) moved during training too
    for (const [name, v] of r.params) if (base.graph.initializers.has(name) && !trainable.includes(name) && !merged.has(name)) setValues(final, name, v);
  } else {
    final = r.model;
  }
  setLabels(final, labelsOf(task, job.trainData));
  setInputSpec(final, { shape: [...job.trainData.shape] as [number, number, number], mean: job.normalization.mean, std: job.normalization.std });
  const accuracy = await taskAccuracy(final, job.testData, task, job.normalization, job.session);
  const record: ZooModelRecord = {
    name: m.name,
    tree: m.tree,
    path: m.path.join('.'),
    depth: m.path.length,
    parent: m.parent,
    seed: m.seed,
    task,
    lr: m.lr,
    steps: m.steps,
    batchSize: s.batchSize,
    rank: m.rank,
    loraLayers: lora ? lora.adapters.map((a) => a.weight) : null,
    trained: lora ? [...lora.adapters.map((a) => a.weight), ...classifierParams(base)] : trainable,
    testAccuracy: accuracy,
    trainLoss: r.loss,
    seconds: (Date.now() - start) / 1000,
  };
  const what =
    m.parent === null
      ? 'root'
      : `child of ${m.parent}, ${task.kind}${task.kind === 'subset' ? ` ${task.classes.join(',')}` : ''}${m.rank !== null ? `, LoRA rank ${m.rank}` : ''}`;
  info(
    `${label} (tree ${m.tree}, depth ${m.path.length}, ${what}): lr ${m.lr}, ${m.steps} steps in ${r.seconds.toFixed(1)} s, loss ${r.loss.toFixed(3)}, test accuracy ${pct(accuracy)}`,
  );
  return { model: final, record };
}

/** Bad ranks fail before anything is trained. */
function checkLoraFits(template: Model, s: ZooSettings): void {
  const targets = loraTargets(template);
  if (!targets.length) throw new OptionError((o) => `${o('lowrank')}: ${s.arch} has no Linear layer besides its classifier to adapt`);
  addLora(template, targets, Math.max(...s.lowrank!), new Rng(0));
}

function setValues(model: Model, name: string, v: Float32Array): void {
  const t = model.graph.initializers.get(name)!;
  model.graph.initializers.set(name, { dtype: 'float32', dims: [...t.dims], data: Float32Array.from(v) });
}

function parentModel(ctx: ZooContext, name: string, tree: number): Model {
  let m = ctx.loaded.get(name);
  if (!m) {
    // the weights on the architecture of the tree's root, whose metadata (arch seed) every model of the tree inherits,
    // so that a parent read back from its file (a resumed zoo, a queue worker) makes the same child as one kept in memory
    const root = createZooModel(ctx.s.arch, zooModelOptions(ctx.s, ctx.trainData, plannedSeed(ctx.s.seed, tree, [])));
    m = loadZooModel<ZooModelRecord>(join(ctx.o.outDir, `${name}.safetensors`), root).model;
    ctx.loaded.set(name, m);
  }
  return m;
}

/** Drops models from memory once every child of theirs is done. */
function releaseFinished(ctx: ZooContext, plan: readonly PlannedModel[], done: number): void {
  for (const name of [...ctx.loaded.keys()]) {
    const pending = plan.some((p, j) => j > done && p.parent === name);
    if (!pending) ctx.loaded.delete(name);
  }
}

/** Output j means the class c with outputOf[c] = j (every task maps classes one to one). */
function labelsOf(task: ZooTask, ds: Dataset): OutputLabel[] {
  const labels: OutputLabel[] = [];
  task.outputOf.forEach((j, c) => {
    const name = ds.classNames?.[c];
    labels[j] = { dataset: ds.name.replace(/-sample$/, ''), class: c, ...(name ? { name } : {}) };
  });
  return labels;
}

function writeZooJson(
  outDir: string,
  s: ZooSettings,
  data: { train: string; test: string },
  plan: readonly PlannedModel[],
  records: Map<string, ZooModelRecord>,
): void {
  writeJsonAtomic(join(outDir, 'zoo.json'), {
    settings: s,
    data: { train: data.train, test: data.test },
    planned: plan.length,
    models: plan.filter((m) => records.has(m.name)).map((m) => records.get(m.name)),
  });
}

/**
 * A zoo folder may only be continued with the settings it was started with. Returns the
 * records zoo.json already holds (their timings survive a resume).
 */
function checkResume(outDir: string, s: ZooSettings): Map<string, ZooModelRecord> {
  if (existsSync(outDir) && !statSync(outDir).isDirectory()) throw new UserError(`-o ${outDir} is a file; expected a folder for the zoo`);
  const file = join(outDir, 'zoo.json');
  if (!existsSync(file)) return new Map();
  let saved: unknown;
  let models: ZooModelRecord[] = [];
  try {
    const zoo = JSON.parse(readFileSync(file, 'utf8')) as { settings?: unknown; models?: ZooModelRecord[] };
    saved = zoo.settings;
    if (Array.isArray(zoo.models)) models = zoo.models;
  } catch {
    throw new UserError(`${file} is not valid JSON; move the folder away or delete zoo.json to start over`);
  }
  for (const [k, v] of Object.entries(s)) {
    // a setting added after a zoo was made (e.g. vit) reads as null in its zoo.json
    const old = (saved as Record<string, unknown> | undefined)?.[k] ?? null;
    if (JSON.stringify(old) !== JSON.stringify(v)) {
      throw new UserError(
        `${outDir} holds a zoo made with ${k} = ${JSON.stringify(old)}, not ${JSON.stringify(v)}; use the same settings to continue it, or another output folder`,
      );
    }
  }
  return new Map(models.filter((m) => m && typeof m.name === 'string').map((m) => [m.name, m]));
}
