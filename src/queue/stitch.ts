/**
 * Stitching grids on the queue: one job per cell (`stitch-cell`), plus one for the
 * networks' own accuracies (`stitch-base`). The coordinator is the grid's `dispatch`
 * hook: cells land in the grid folder as the same cells/<id>.json files a local run
 * writes, so matrix.json, resuming and the heatmaps work unchanged. A worker opens the
 * grid from the job (models as verified blobs, options through the grid's own checks)
 * in its work folder, and keeps its models, activations and sessions for the next cell
 * of the same grid.
 *
 * @example
 *   await stitchGrid({ a: 'a.onnx', b: 'b.onnx', data: 'fashion-mnist', out: 'grid', dispatch: stitchDispatch('redis://localhost:6379') });
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { totalmem } from 'node:os';
import { StitchGrid, checkOptions, openGridContext, type GridRunOptions } from '../stitch/grid.js';
import { CellSessions, DEFAULT_CELL_OPTIONS, runCell, type CellOptions, type CellResult } from '../stitch/cell.js';
import { PAIR_KINDS, type PairKind } from '../stitch/controls.js';
import { baseAccuracies } from '../stitch/matrix.js';
import type { StitchContext } from '../stitch/context.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { OptionError, UserError } from '../util/errors.js';
import type { BlobRef } from './blobs.js';
import { Coordinator, failureMessage, settleAll, type CoordinatorOptions } from './coordinator.js';
import { parseDataRef, type DataRef, type JobKind, type WorkerEnv } from './jobs.js';
import { bool, canonicalJson, fields, int, list, num, oneOf, opt, str } from './schema.js';

/** Everything that defines a grid, by value. */
export interface GridPayload {
  a: BlobRef;
  b: BlobRef;
  data: DataRef;
  senders: string[];
  receivers: string[];
  kinds: PairKind[];
  options: CellOptions;
  trainLimit?: number;
  testLimit?: number;
  mean?: number[];
  std?: number[];
  cacheMb: number;
}

export interface CellPayload {
  grid: GridPayload;
  cell: { kind: PairKind; sender: string; receiver: string };
}

const MAX_CUTS = 10_000;

function parseGrid(v: unknown, what: string): GridPayload {
  const o = fields(v, what, ['a', 'b', 'data', 'senders', 'receivers', 'kinds', 'options', 'cacheMb'], ['trainLimit', 'testLimit', 'mean', 'std']);
  const limit = (x: unknown, w: string): number => int(x, w, 1, 1e9);
  const numbers = (x: unknown, w: string): number[] => list(x, w, num, 64);
  const kinds = list(o['kinds'], `${what}.kinds`, (x, w) => oneOf(x, w, PAIR_KINDS), PAIR_KINDS.length);
  if (!kinds.length || new Set(kinds).size !== kinds.length) throw new UserError(`${what}.kinds must list distinct pair kinds`);
  const options = parseCellOptions(o['options'], `${what}.options`);
  // the CLI's own checks, before anything is fetched
  checkOptions(options);
  const out: GridPayload = {
    a: o['a'] as BlobRef,
    b: o['b'] as BlobRef,
    data: parseDataRef(o['data'], `${what}.data`),
    senders: list(o['senders'], `${what}.senders`, (x, w) => str(x, w, 1000), MAX_CUTS),
    receivers: list(o['receivers'], `${what}.receivers`, (x, w) => str(x, w, 1000), MAX_CUTS),
    kinds,
    options,
    // activations cached per worker: at most the machine's memory (the CLI accepts any size; a job must not)
    cacheMb: int(o['cacheMb'], `${what}.cacheMb`, 0, Math.floor(totalmem() / 2 ** 20)),
  };
  const tl = opt(o, 'trainLimit', what, limit),
    vl = opt(o, 'testLimit', what, limit);
  const mean = opt(o, 'mean', what, numbers),
    std = opt(o, 'std', what, numbers);
  return { ...out, ...(tl ? { trainLimit: tl } : {}), ...(vl ? { testLimit: vl } : {}), ...(mean ? { mean } : {}), ...(std ? { std } : {}) };
}

/** Cell options: exactly the fields of the defaults, each of the default's type (the values are checked by checkOptions). */
function parseCellOptions(v: unknown, what: string): CellOptions {
  const keys = Object.keys(DEFAULT_CELL_OPTIONS);
  const o = fields(v, what, keys);
  const out: Record<string, unknown> = {};
  for (const k of keys) {
    const d = (DEFAULT_CELL_OPTIONS as unknown as Record<string, unknown>)[k];
    out[k] = typeof d === 'number' ? num(o[k], `${what}.${k}`) : typeof d === 'boolean' ? bool(o[k], `${what}.${k}`) : str(o[k], `${what}.${k}`, 100);
  }
  return out as unknown as CellOptions;
}

const gridKey = (g: GridPayload): string => createHash('sha256').update(canonicalJson(g)).digest('hex').slice(0, 24);

/** Grids a worker has open, by key (models parsed once per grid, not per cell). */
const grids = new Map<string, Promise<StitchGrid>>();

/** The job's grid in the worker's work folder: blobs verified, cut names and options checked as `modelsmith stitch` checks them. */
async function workerGrid(g: GridPayload, env: WorkerEnv): Promise<{ grid: StitchGrid; key: string }> {
  const key = gridKey(g);
  const cacheKey = `${env.work}\n${key}`;
  let p = grids.get(cacheKey);
  if (!p) {
    p = (async () => {
      const a = await env.blob(g.a, 'model A'),
        b = await env.blob(g.b, 'model B');
      return StitchGrid.open(
        join(env.work, 'stitch', key),
        {
          a,
          b,
          data: g.data.spec,
          senders: g.senders,
          receivers: g.receivers,
          kinds: g.kinds,
          options: g.options,
          allowSkipped: true,
          cacheMb: g.cacheMb,
          ...(g.trainLimit ? { trainLimit: g.trainLimit } : {}),
          ...(g.testLimit ? { testLimit: g.testLimit } : {}),
          ...(g.mean ? { mean: g.mean } : {}),
          ...(g.std ? { std: g.std } : {}),
          // the worker's data rules (allowed folders) and the run's dataset identity, before any image is read
        },
        (_spec, split) => env.dataset(g.data, split as 'train' | 'test'),
      );
    })();
    grids.set(cacheKey, p);
    p.catch(() => grids.delete(cacheKey));
    while (grids.size > 8) grids.delete(grids.keys().next().value as string);
  } else {
    // the blobs are still registered for this job (names in messages)
    await env.blob(g.a, 'model A');
    await env.blob(g.b, 'model B');
  }
  return { grid: await p, key };
}

export const STITCH_CELL: JobKind<CellPayload, CellResult> = {
  parse(raw) {
    const o = fields(raw, 'stitch-cell payload', ['grid', 'cell']);
    const c = fields(o['cell'], 'stitch-cell payload.cell', ['kind', 'sender', 'receiver']);
    return {
      grid: parseGrid(o['grid'], 'stitch-cell payload.grid'),
      cell: {
        kind: oneOf(c['kind'], 'cell.kind', PAIR_KINDS),
        sender: str(c['sender'], 'cell.sender', 1000),
        receiver: str(c['receiver'], 'cell.receiver', 1000),
      },
    };
  },
  async run(p, env) {
    const { grid, key } = await workerGrid(p.grid, env);
    const f = grid.file;
    const cell = grid.cells.find((c) => c.kind === p.cell.kind && f.senders[c.i]!.name === p.cell.sender && f.receivers[c.j]!.name === p.cell.receiver);
    if (!cell) throw new UserError(`the grid has no cell ${p.cell.kind} ${p.cell.sender} -> ${p.cell.receiver}`);
    if (cell.skipped) throw new UserError(cell.skipped);
    const pair = { kind: cell.kind, sender: f.senders[cell.i]!, receiver: f.receivers[cell.j]! };
    return env.pooled(
      `stitch:${key}`,
      async () => ({
        ctx: await openGridContext(grid, env.session, (_spec, split) => env.dataset(p.grid.data, split as 'train' | 'test')),
        sessions: new CellSessions(),
      }),
      async (t: { ctx: StitchContext; sessions: CellSessions }) => {
        await t.sessions.release();
        await t.ctx.release();
      },
      (t) => runCell(t.ctx, t.sessions, pair, f.options),
    );
  },
};

export const STITCH_BASE: JobKind<{ grid: GridPayload }, Record<string, number>> = {
  parse(raw) {
    const o = fields(raw, 'stitch-base payload', ['grid']);
    return { grid: parseGrid(o['grid'], 'stitch-base payload.grid') };
  },
  async run(p, env) {
    const { grid } = await workerGrid(p.grid, env);
    // the worker's data rules and the run's dataset identity first; then the grid's own code
    await env.dataset(p.grid.data, 'train');
    await env.dataset(p.grid.data, 'test');
    return baseAccuracies(grid, env.session);
  },
};

/**
 * The grid's dispatch hook for `--queue <url>`: enqueues the pending cells (at most
 * `stopAfter`) and the base accuracies, writes each result into the grid folder as it
 * arrives (once: a cell file that exists is never rewritten), and fails with one line
 * listing the cells that failed.
 */
export function stitchDispatch(url: string, o: CoordinatorOptions = {}): NonNullable<GridRunOptions['dispatch']> {
  return async (grid, opts) => {
    const f = grid.file;
    if ((opts.workers ?? 1) > 1)
      throw new OptionError(
        (o) => `${o('workers', opts.workers!)} starts local processes; a queue's workers are started on any machine (startWorker, or modelsmith worker)`,
      );
    const c = await Coordinator.open(url, `stitch-${f.fingerprint}`, `stitch ${grid.dir}`, o);
    try {
      const payload: GridPayload = {
        a: await c.putFile(f.spec.a),
        b: await c.putFile(f.spec.b),
        data: await c.data(f.spec.data),
        senders: f.senders.map((s) => s.name),
        receivers: f.receivers.map((r) => r.name),
        kinds: f.kinds,
        options: f.options,
        cacheMb: f.spec.cacheMb ?? 1024,
        ...(f.spec.trainLimit ? { trainLimit: f.spec.trainLimit } : {}),
        ...(f.spec.testLimit ? { testLimit: f.spec.testLimit } : {}),
        ...(f.spec.mean ? { mean: f.spec.mean } : {}),
        ...(f.spec.std ? { std: f.spec.std } : {}),
      };
      const pending = opts.stopAfter !== undefined ? grid.pending.slice(0, opts.stopAfter) : grid.pending;
      c.track(pending.length, 'cells');
      const basePath = join(grid.dir, 'base.json');
      const jobs: Promise<void>[] = [
        c.submit<Record<string, number>>('stitch-base', { grid: payload }, 'base accuracies', false).then(({ result }) => {
          const base = checkBase(result);
          const have = existsSync(basePath) ? readFileSync(basePath, 'utf8') : '';
          if (have !== JSON.stringify(base, null, 2) + '\n') writeJsonAtomic(basePath, base);
        }),
        ...pending.map((cell) =>
          c
            .submit<CellResult>(
              'stitch-cell',
              {
                grid: payload,
                cell: { kind: cell.kind, sender: f.senders[cell.i]!.name, receiver: f.receivers[cell.j]!.name },
              },
              `cell ${cell.id}`,
            )
            .then(({ result, worker }) => {
              const r = checkCell(result, cell.kind, f.senders[cell.i]!.name, f.receivers[cell.j]!.name);
              // at-least-once delivery: the first result is kept, a repeat is not written again
              if (!existsSync(cell.file)) writeJsonAtomic(cell.file, { ...r, finishedAt: new Date().toISOString(), worker });
            }),
        ),
      ];
      const { failed } = await settleAll(jobs);
      if (failed.length) throw new OptionError(failureMessage(failed, jobs.length, 'jobs'));
    } finally {
      await c.close();
    }
  };
}

/** A cell result from a worker: the cell asked for, with numbers where numbers belong. */
function checkCell(v: unknown, kind: PairKind, sender: string, receiver: string): CellResult {
  const r = v as CellResult;
  if (!r || typeof r !== 'object' || r.kind !== kind || r.sender !== sender || r.receiver !== receiver || typeof r.accuracy !== 'number') {
    throw new UserError(`a worker returned a result for another cell than ${kind} ${sender} -> ${receiver}`);
  }
  for (const [k, x] of Object.entries(r)) {
    if (typeof x === 'number' && !Number.isFinite(x)) throw new UserError(`a worker's result for ${kind} ${sender} -> ${receiver} has ${k} = ${x}`);
  }
  return r;
}

function checkBase(v: unknown): Record<string, number> {
  const o = v as Record<string, unknown>;
  if (!o || typeof o !== 'object' || !Object.values(o).every((x) => typeof x === 'number' && x >= 0 && x <= 1)) {
    throw new UserError('a worker returned unreadable base accuracies');
  }
  return o as Record<string, number>;
}
