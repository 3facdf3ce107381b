/**
 * Model LEGO experiments on the queue: one job per row (`lego-row`: a disassembly,
 * mismatch, assembly, unbalanced-samples or sweep row, named by the row key the local
 * run resumes by), after one `lego-plan` job that lists the keys. A worker runs the same
 * runLegoExperiment as a local run, restricted to the job's row, in the job's folder;
 * components it cut for earlier rows of the same experiment are reused from its work
 * folder. The row and the model files it wrote (components/, assembled/) come back to
 * the coordinator, which writes experiment.json, report.md and the files into the output
 * folder as a local run does.
 *
 * @example
 *   const r = await legoExperimentOnQueue('redis://localhost:6379', { model: 'vgg.onnx', data: 'fashion-mnist', outDir: 'runs/lego' });
 */
import { existsSync, linkSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { checkExperimentOptions, experimentMarkdown, runLegoExperiment, type ExperimentOptions, type ExperimentResult } from '../lego/experiment.js';
import { writeFileAtomic } from '../util/atomic.js';
import { writeResultJson } from '../util/provenance.js';
import { loadModel, saveModel } from '../onnx/proto.js';
import { OptionError, UserError } from '../util/errors.js';
import { checkBlobRef, type BlobRef } from './blobs.js';
import { Coordinator, failureMessage, settleAll, type CoordinatorOptions } from './coordinator.js';
import { parseDataRef, type DataRef, type JobKind, type WorkerEnv } from './jobs.js';
import { canonicalJson, type Check, type Checks, fields, int, list, num, oneOf, optionalFields, presentFields, str, substitute } from './schema.js';
import { RECALIBRATION_MODES } from '../lego/recalibrate.js';
import { FLATTEN_MODES } from '../lego/masks.js';
import { SAMPLE_RANKINGS } from '../lego/samples.js';

/** The options that define an experiment's rows (paths, resuming and sessions are each side's own). */
export type LegoJobOptions = Pick<
  ExperimentOptions,
  | 'tasks'
  | 'pairs'
  | 'samplesPerClass'
  | 'unbalanced'
  | 'finetuneEpochs'
  | 'sweep'
  | 'sweepTask'
  | 'scaleSamplesPerClass'
  | 'seed'
  | 'batchSize'
  | 'mean'
  | 'std'
  | 'disassembly'
>;

export interface LegoPayload {
  model: BlobRef;
  model2?: BlobRef;
  /** the models' names on the coordinator (as given to it): rows and assembled models' provenance name them */
  names: { model: string; model2?: string };
  data: DataRef;
  options: LegoJobOptions;
}

/** One output file of a row: its path in the output folder and its content. */
export interface RowFile {
  path: string;
  blob: BlobRef;
}

export interface RowResult {
  table: string;
  row: { key: string } & Record<string, unknown>;
  files: RowFile[];
}

/** Files a row may bring back: the two folders a local run writes models into. */
const ROW_FILE = /^(components|assembled)\/[A-Za-z0-9._+,=-]+\.onnx$/;

const classList: Check<number[]> = (x, w) => list(x, w, (y, ww) => int(y, ww, 0, 999), 1000);
const count: Check<number> = (x, w) => int(x, w, 1, 1_000_000);
const fraction: Check<number> = (y, w) => {
  const n = num(y, w);
  if (!(n >= 0 && n <= 1)) throw new UserError(`${w} must be in [0, 1], got ${n}`);
  return n;
};
const stats =
  (positive: boolean): Check<number[]> =>
  (x, w) =>
    list(
      x,
      w,
      (y, ww) => {
        const n = num(y, ww);
        if (positive && !(n > 0)) throw new UserError(`${ww} must be > 0, got ${n}`);
        return n;
      },
      4,
    );

/** The experiment options a lego job carries (the rest are the coordinator's: output folder, resume, session), each with its check. */
const LEGO_JOB_OPTIONS: Checks<LegoJobOptions> = {
  tasks: (x, w) => list(x, w, classList, 1000),
  pairs: (x, w) =>
    list(
      x,
      w,
      (y, ww) => {
        const pair = list(y, ww, classList, 2);
        if (pair.length !== 2) throw new UserError(`${ww} must be a pair of class lists`);
        return pair as [number[], number[]];
      },
      1000,
    ),
  samplesPerClass: count,
  unbalanced: (x, w) => {
    const u = list(x, w, count, 2);
    if (u.length !== 2) throw new UserError(`${w} must be [lo, hi]`);
    return u as [number, number];
  },
  finetuneEpochs: (x, w) => int(x, w, -1, 100_000),
  sweep: (x, w) =>
    list(
      x,
      w,
      (y, ww) => {
        const s = fields(y, ww, ['alpha', 'beta']);
        return { alpha: num(s['alpha'], `${ww}.alpha`), beta: num(s['beta'], `${ww}.beta`) };
      },
      10_000,
    ),
  sweepTask: classList,
  scaleSamplesPerClass: count,
  seed: int,
  batchSize: (x, w) => int(x, w, 1, 65_536),
  mean: stats(false),
  std: stats(true),
  disassembly: (x, w) =>
    optionalFields<NonNullable<LegoJobOptions['disassembly']>>(x, w, {
      recalibration: (y, ww) => oneOf(y, ww, RECALIBRATION_MODES),
      recalibrationSamples: (y, ww) => int(y, ww, 0, 1_000_000),
      flatten: (y, ww) => oneOf(y, ww, FLATTEN_MODES),
      ranking: (y, ww) => oneOf(y, ww, SAMPLE_RANKINGS),
      validationPerClass: (y, ww) => int(y, ww, 0, 1_000_000),
      classDrop: fraction,
      maxDrop: fraction,
      guard: fraction,
    }),
};

function parseOptions(v: unknown, what: string): LegoJobOptions {
  const out = optionalFields<LegoJobOptions>(v, what, LEGO_JOB_OPTIONS);
  // the same checks as the CLI's flags, before anything is fetched
  checkExperimentOptions({ model: '', data: '', outDir: '', ...out });
  return out;
}

function parsePayload(v: unknown, what: string): LegoPayload {
  const o = fields(v, what, ['model', 'names', 'data', 'options'], ['model2']);
  const n = fields(o['names'], `${what}.names`, ['model'], ['model2']);
  return {
    names: {
      model: str(n['model'], `${what}.names.model`, 1000),
      ...(n['model2'] !== undefined ? { model2: str(n['model2'], `${what}.names.model2`, 1000) } : {}),
    },
    model: o['model'] as BlobRef,
    ...(o['model2'] !== undefined ? { model2: o['model2'] as BlobRef } : {}),
    data: parseDataRef(o['data'], `${what}.data`),
    options: parseOptions(o['options'], `${what}.options`),
  };
}

/**
 * Runs the experiment in the job's folder with `select`, the models linked in under
 * role names (so that two files with equal bytes stay two models, as in a local run) and
 * the components cut for earlier rows of the same experiment linked in from the work folder.
 */
async function runInJob(
  p: LegoPayload,
  env: WorkerEnv,
  select: (key: string) => boolean,
  reuse = true,
): Promise<{ result: ExperimentResult; used: string[]; roles: Map<string, string> }> {
  checkBlobRef(p.model, 'model', env.maxBlobBytes);
  if (p.model2) checkBlobRef(p.model2, 'model2', env.maxBlobBytes);
  await env.dataset(p.data, 'train');
  await env.dataset(p.data, 'test');
  const inputs = join(env.dir, 'inputs');
  mkdirSync(inputs, { recursive: true });
  const model = join(inputs, 'model.onnx');
  linkSync(await env.blob(p.model, 'model'), model);
  let model2: string | undefined;
  if (p.model2) {
    model2 = join(inputs, 'model2.onnx');
    linkSync(await env.blob(p.model2, 'model2'), model2);
  }
  const cache = join(env.work, 'lego', createHash('sha256').update(canonicalJson(p)).digest('hex').slice(0, 24), 'components');
  const mine = join(env.dir, 'out', 'components');
  mkdirSync(cache, { recursive: true });
  mkdirSync(mine, { recursive: true });
  // a disassembly row reports the warnings of cutting its component, so it always cuts it itself
  if (reuse) for (const f of readdirSync(cache)) if (f.endsWith('.onnx')) linkSync(join(cache, f), join(mine, f));
  const inode = (path: string): number => statSync(path).ino;
  const before = new Map(readdirSync(mine).map((f) => [f, inode(join(mine, f))]));
  const result = await runLegoExperiment({
    model,
    ...(model2 ? { model2 } : {}),
    data: p.data.spec,
    outDir: join(env.dir, 'out'),
    ...p.options,
    resume: true,
    select,
    session: env.session,
  });
  // components this row saved (a rewrite replaces the linked file): shared with later rows, sent with this one
  const used = readdirSync(mine).filter((f) => f.endsWith('.onnx') && before.get(f) !== inode(join(mine, f)));
  for (const f of used) {
    if (!existsSync(join(cache, f))) {
      try {
        linkSync(join(mine, f), join(cache, f));
      } catch {
        /* another job linked it first */
      }
    }
  }
  const roles = new Map([[model, p.names.model], ...(model2 ? [[model2, p.names.model2 ?? model2] as [string, string]] : [])]);
  return { result: substitute(result, roles), used: used.map((f) => `components/${f}`), roles };
}

export const LEGO_PLAN: JobKind<LegoPayload, { skeleton: ExperimentResult; keys: string[] }> = {
  parse: (raw) => parsePayload(raw, 'lego-plan payload'),
  async run(p, env) {
    const keys: string[] = [];
    const { result } = await runInJob(p, env, (key) => {
      keys.push(key);
      return false;
    });
    return { skeleton: result, keys };
  },
};

export const LEGO_ROW: JobKind<{ experiment: LegoPayload; key: string }, RowResult> = {
  parse(raw) {
    const o = fields(raw, 'lego-row payload', ['experiment', 'key']);
    return { experiment: parsePayload(o['experiment'], 'lego-row payload.experiment'), key: str(o['key'], 'lego-row payload.key', 1000) };
  },
  async run(p, env) {
    let seen = false;
    const { result, used, roles } = await runInJob(
      p.experiment,
      env,
      (key) => {
        seen ||= key === p.key;
        return key === p.key;
      },
      !p.key.startsWith('dis:'),
    );
    if (!seen) throw new UserError(`the experiment has no row "${p.key}"`);
    const found = rowOf(result, p.key);
    if (!found) throw new UserError(`row "${p.key}" was not computed`);
    const out = join(env.dir, 'out');
    const assembled = existsSync(join(out, 'assembled'))
      ? readdirSync(join(out, 'assembled'))
          .filter((f) => f.endsWith('.onnx'))
          .map((f) => `assembled/${f}`)
      : [];
    const files: RowFile[] = [];
    for (const path of [...used, ...assembled]) {
      // model files name their parts by file (assembled models' provenance): the coordinator's names, not this worker's paths
      const m = loadModel(join(out, path));
      const meta = substitute(m.metadata, roles);
      if (JSON.stringify(meta) !== JSON.stringify(m.metadata)) {
        m.metadata = meta;
        saveModel(m, join(out, path));
      }
      files.push({ path, blob: await env.put(join(out, path)) });
    }
    return { ...found, files };
  },
};

/** The table holding a row: any list of the result whose items carry keys. */
function rowOf(r: ExperimentResult, key: string): { table: string; row: RowResult['row'] } | undefined {
  for (const [table, rows] of Object.entries(r)) {
    if (!Array.isArray(rows)) continue;
    const row = (rows as { key?: unknown }[]).find((x) => x && typeof x === 'object' && x.key === key);
    if (row) return { table, row: row as RowResult['row'] };
  }
  return undefined;
}

/**
 * `modelsmith lego-experiment --queue`: the rows as jobs; experiment.json, report.md,
 * components/ and assembled/ in `opts.outDir` as a local run writes them (with --resume,
 * rows already in experiment.json are kept and not enqueued).
 */
export async function legoExperimentOnQueue(url: string, opts: ExperimentOptions, co: CoordinatorOptions = {}): Promise<ExperimentResult> {
  checkExperimentOptions(opts);
  const options = presentFields<LegoJobOptions>(opts, LEGO_JOB_OPTIONS);
  const run = `lego-${createHash('sha256')
    .update(canonicalJson({ out: opts.outDir, options }))
    .digest('hex')
    .slice(0, 12)}`;
  const c = await Coordinator.open(url, run, `lego-experiment ${opts.outDir}`, co);
  try {
    const payload: LegoPayload = {
      model: await c.putFile(opts.model),
      ...(opts.model2 ? { model2: await c.putFile(opts.model2) } : {}),
      names: { model: opts.model, ...(opts.model2 ? { model2: opts.model2 } : {}) },
      data: await c.data(opts.data),
      options,
    };
    const plan = await c.submit<{ skeleton: ExperimentResult; keys: string[] }>('lego-plan', payload, 'plan', false);
    const keys = plan.result.keys;
    const file = join(opts.outDir, 'experiment.json');
    const result: ExperimentResult = opts.resume && existsSync(file) ? readResult(file) : plan.result.skeleton;
    const order = new Map(keys.map((k, i) => [k, i]));
    const save = (): void => {
      mkdirSync(opts.outDir, { recursive: true });
      writeResultJson(file, result);
      writeFileAtomic(join(opts.outDir, 'report.md'), experimentMarkdown(result));
    };
    const has = (key: string): boolean => rowOf(result, key) !== undefined;
    const todo = keys.filter((k) => !has(k));
    c.track(todo.length, 'rows');
    const jobs = todo.map((key) =>
      c.submit<RowResult>('lego-row', { experiment: payload, key }, `row ${key}`).then(async ({ result: raw }) => {
        const r = checkRow(raw, key);
        if (has(key)) return;
        for (const f of r.files) {
          const bytes = await c.blobs.get(checkBlobRef(f.blob, `file ${f.path}`, 2 ** 40), `file ${f.path}`);
          writeFileAtomic(join(opts.outDir, f.path), bytes);
        }
        const rows = ((result as unknown as Record<string, unknown[]>)[r.table] ??= []);
        rows.push(r.row);
        rows.sort((x, y) => (order.get((x as { key: string }).key) ?? -1) - (order.get((y as { key: string }).key) ?? -1));
        save();
      }),
    );
    const { failed } = await settleAll(jobs);
    save();
    if (failed.length) throw new OptionError(failureMessage(failed, jobs.length, 'rows'));
    return result;
  } finally {
    await c.close();
  }
}

/** A row from a worker: the row asked for, in a known table, with files only where a local run writes them. */
function checkRow(v: unknown, key: string): RowResult {
  const r = v as RowResult;
  if (!r || typeof r !== 'object' || typeof r.table !== 'string' || !/^[a-z]+$/.test(r.table) || !r.row || r.row.key !== key || !Array.isArray(r.files)) {
    throw new UserError(`a worker returned an unreadable result for row ${key}`);
  }
  for (const f of r.files) {
    if (!f || typeof f.path !== 'string' || !ROW_FILE.test(f.path))
      throw new UserError(`a worker's result for row ${key} names the file ${JSON.stringify(f?.path)}, not one a row writes`);
  }
  return r;
}

function readResult(file: string): ExperimentResult {
  try {
    // the provenance block is the earlier run's; this run's is attached when the file is written again
    const { provenance: _, ...r } = JSON.parse(readFileSync(file, 'utf8')) as ExperimentResult & { provenance?: unknown };
    return r as ExperimentResult;
  } catch (e) {
    throw new OptionError(
      (o) => `cannot resume: ${file} is not a readable experiment result (${(e as Error).message}); remove it or run without ${o('resume')}`,
    );
  }
}
