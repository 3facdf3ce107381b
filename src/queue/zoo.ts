/**
 * Lineage zoos on the queue: one job per model (`zoo-model`). A model is enqueued as soon
 * as its parent's file is in the zoo folder; the job carries the parent's .safetensors as
 * a blob (its record, and so its task, is in the file's metadata), the worker fine-tunes
 * it with the same makeModel as a local run and sends the child's file back. Roots and
 * the children of one parent train in parallel on as many workers as there are.
 *
 * @example
 *   const r = await makeLineageZoo({ data: 'fashion-mnist', outDir: 'runs/zoo', trees: 3 }, queueZooMaker('redis://localhost:6379', 'runs/zoo'));
 */
import { createHash } from 'node:crypto';
import { existsSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { makeModel, openZooContext, type ZooContext, type ZooMaker, type ZooModelRecord } from '../lineage/zoo/make.js';
import { zooSettings, type LineageZooOptions, type ZooSettings } from '../lineage/zoo/options.js';
import { planZoo, type PlannedModel } from '../lineage/zoo/plan.js';
import { readZooRecord } from '../lineage/zoo/store.js';
import { writeFileAtomic } from '../util/atomic.js';
import { OptionError, UserError } from '../util/errors.js';
import { checkBlobRef, type BlobRef } from './blobs.js';
import { Coordinator, failureMessage, settleAll, type CoordinatorOptions } from './coordinator.js';
import { parseDataRef, type DataRef, type JobKind } from './jobs.js';
import { bool, canonicalJson, type Check, type Checks, fields, int, list, num, optionalFields, presentFields, str } from './schema.js';

/** The options that decide a zoo model's bytes (the settings) and which files it has. */
export type ZooJobOptions = Pick<
  LineageZooOptions,
  | 'trees'
  | 'children'
  | 'depth'
  | 'lowrank'
  | 'arch'
  | 'hidden'
  | 'width'
  | 'seed'
  | 'rootSteps'
  | 'steps'
  | 'batchSize'
  | 'onnx'
  | 'patch'
  | 'layers'
  | 'heads'
  | 'mlp'
>;

export interface ZooPayload {
  data: DataRef;
  options: ZooJobOptions;
  /** the planned model to make */
  model: string;
  /** its parent's .safetensors (absent for a root) */
  parent?: BlobRef;
}

export interface ZooModelResult {
  record: ZooModelRecord;
  files: { path: string; blob: BlobRef }[];
}

const whole: Check<number> = (x, w) => int(x, w, 0, 0xffffffff);
const size: Check<number> = (x, w) => int(x, w, 1, 1_000_000);
const sizes: Check<number[]> = (x, w) => list(x, w, size, 64);

/** The zoo options a job carries, each with its check; zooSettings then checks what they mean together. */
const ZOO_JOB_OPTIONS: Checks<ZooJobOptions> = {
  trees: whole,
  children: whole,
  depth: whole,
  lowrank: sizes,
  arch: (x, w) => str(x, w, 100),
  hidden: sizes,
  width: num,
  seed: whole,
  rootSteps: whole,
  steps: whole,
  batchSize: whole,
  onnx: bool,
  // the ViT's shape (--arch vit)
  patch: size,
  layers: size,
  heads: size,
  mlp: size,
};

/** Zoo contexts (datasets, template) a worker keeps between models of the same zoo. */
const contexts = new Map<string, Promise<ZooContext>>();

export const ZOO_MODEL: JobKind<ZooPayload, ZooModelResult> = {
  parse(raw) {
    const w = 'zoo-model payload';
    const o = fields(raw, w, ['data', 'options', 'model'], ['parent']);
    const options = optionalFields<ZooJobOptions>(o['options'], `${w}.options`, ZOO_JOB_OPTIONS);
    const data = parseDataRef(o['data'], `${w}.data`);
    // the CLI's checks of every setting, before anything is fetched
    zooSettings({ ...options, data: data.spec, outDir: '' });
    return { data, options, model: str(o['model'], `${w}.model`, 200), ...(o['parent'] !== undefined ? { parent: o['parent'] as BlobRef } : {}) };
  },
  async run(p, env) {
    const o: LineageZooOptions = {
      ...p.options,
      data: p.data.spec,
      outDir: env.dir,
      threads: env.session.threads ?? 1,
      ...(env.session.provider ? { provider: env.session.provider } : {}),
    };
    const s = zooSettings(o);
    const key = `${env.work}\n${canonicalJson(s)}`;
    let ctxp = contexts.get(key);
    if (!ctxp) {
      ctxp = openZooContext(o, s, (_spec, split) => env.dataset(p.data, split as 'train' | 'test'));
      contexts.set(key, ctxp);
      ctxp.catch(() => contexts.delete(key));
      while (contexts.size > 4) contexts.delete(contexts.keys().next().value as string);
    }
    const base = await ctxp;
    const plan = planZoo(s, base.trainData.classes);
    const m = plan.find((x) => x.name === p.model);
    if (!m) throw new UserError(`the zoo has no model "${p.model}" (its models are ${plan[0]?.name}..${plan[plan.length - 1]?.name})`);
    const records = new Map<string, ZooModelRecord>();
    if (m.parent !== null) {
      if (!p.parent) throw new UserError(`model ${m.name} is fine-tuned from ${m.parent}, but the job brings no parent file`);
      const file = join(env.dir, `${m.parent}.safetensors`);
      linkSync(await env.blob(p.parent, `parent ${m.parent}`), file);
      const rec = readZooRecord<ZooModelRecord>(file);
      if (!rec || rec.name !== m.parent) throw new UserError(`the parent file sent for ${m.name} is not zoo model ${m.parent}`);
      records.set(m.parent, rec);
    } else if (p.parent) {
      throw new UserError(`model ${m.name} is a root; the job must not bring a parent file`);
    }
    const ctx: ZooContext = { ...base, o, s, records, loaded: new Map() };
    const record = await makeModel(ctx, m, join(env.dir, `${m.name}.safetensors`), m.name);
    const files = [{ path: `${m.name}.safetensors`, blob: await env.put(join(env.dir, `${m.name}.safetensors`)) }];
    if (p.options.onnx) files.push({ path: `onnx/${m.name}.onnx`, blob: await env.put(join(env.dir, 'onnx', `${m.name}.onnx`)) });
    return { record, files };
  },
};

/**
 * The zoo's maker for `--queue <url>`: every model a job, each enqueued when its parent's
 * file is in `outDir`; files are written there as they arrive. A failed model fails its
 * descendants; the rest of the zoo is still made.
 */
export function queueZooMaker(url: string, o: LineageZooOptions, co: CoordinatorOptions = {}): ZooMaker & { close(): Promise<void> } {
  let c: Coordinator | undefined;
  let data: DataRef | undefined;
  let settings: ZooSettings | undefined;
  const options = presentFields<ZooJobOptions>(o, ZOO_JOB_OPTIONS);
  return {
    async data(s) {
      settings = s;
      const run = `zoo-${createHash('sha256')
        .update(canonicalJson({ s, out: o.outDir }))
        .digest('hex')
        .slice(0, 12)}`;
      c = await Coordinator.open(url, run, `lineage-zoo ${o.outDir}`, co);
      const d = await c.dataWithSources(s.data);
      data = d.ref;
      return { classes: d.ref.expect.classes, train: d.sources.train, test: d.sources.test };
    },
    async make(todo, _plan, records, made) {
      if (!c || !data || !settings) throw new Error('queueZooMaker: data() was not called');
      const coordinator = c;
      coordinator.track(todo.length, 'models');
      const done = new Map<string, Promise<void>>();
      const one = async (m: PlannedModel): Promise<void> => {
        if (m.parent !== null) {
          const wait = done.get(m.parent);
          if (wait)
            await wait.catch(() => {
              throw new UserError(`model ${m.name}: its parent ${m.parent} failed`);
            });
        }
        const payload: ZooPayload = {
          data: data!,
          options,
          model: m.name,
          ...(m.parent !== null ? { parent: await coordinator.putFile(join(o.outDir, `${m.parent}.safetensors`)) } : {}),
        };
        const { result } = await coordinator.submit<ZooModelResult>('zoo-model', payload, `model ${m.name}`);
        const r = checkResult(result, m, !!o.onnx);
        for (const f of r.files) {
          const target = join(o.outDir, f.path);
          const bytes = await coordinator.blobs.get(checkBlobRef(f.blob, `file ${f.path}`, 2 ** 40), `file ${f.path}`);
          // a result delivered twice is written once
          if (!existsSync(target) || f.path.startsWith('onnx/')) writeFileAtomic(target, bytes);
        }
        if (!records.has(m.name)) made(r.record);
      };
      for (const m of todo) done.set(m.name, one(m));
      const { failed } = await settleAll([...done.values()]);
      if (failed.length) throw new OptionError(failureMessage(failed, todo.length, 'models'));
    },
    async close() {
      await c?.close();
    },
  };
}

/** A model's result from a worker: the model asked for, and exactly its files. */
function checkResult(v: unknown, m: PlannedModel, onnx: boolean): ZooModelResult {
  const r = v as ZooModelResult;
  const want = [`${m.name}.safetensors`, ...(onnx ? [`onnx/${m.name}.onnx`] : [])];
  if (
    !r ||
    typeof r !== 'object' ||
    !r.record ||
    r.record.name !== m.name ||
    r.record.parent !== m.parent ||
    r.record.seed !== m.seed ||
    !Array.isArray(r.files) ||
    r.files.length !== want.length ||
    !r.files.every((f, i) => f && f.path === want[i])
  ) {
    throw new UserError(`a worker returned an unreadable result for zoo model ${m.name}`);
  }
  return r;
}
