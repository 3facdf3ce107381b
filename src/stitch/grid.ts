/**
 * Stitching grids as resumable job lists (StitchGrid). A grid folder holds grid.json
 * (what is being computed), cells/<kind>--<sender>--<receiver>.json (one result per
 * cell, written atomically the moment it is done) and, once every cell is done,
 * matrix.json and the heatmaps. Rerunning the command skips finished cells, so a killed
 * grid continues where it stopped; `workers` > 1 runs cells in parallel child processes
 * that claim whole rows (pair kind x sender cut) so each keeps its sender's cached
 * activations and receiver sessions across the row.
 */
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import type { Model } from '../onnx/types.js';
import { openModel } from '../onnx/open.js';
import { openDataset } from '../data/resolve.js';
import type { SessionOptions } from '../runtime/session.js';
import { writeJsonAtomic } from '../util/atomic.js';
import { info, isQuiet } from '../util/progress.js';
import { fromMarked, messageIn, OptionError, UserError, withContext, type OptionNamer } from '../util/errors.js';
import { onInterrupt } from '../util/interrupt.js';
import { writeErr } from '../util/sinks.js';
import { alternatives, pct } from '../util/format.js';
import { type StitchCut, chooseCuts, defaultReceivers, defaultSenders } from './cuts.js';
import type { PairKind } from './controls.js';
import {
  type CellOptions,
  type CellResult,
  type StitchPair,
  CellSessions,
  DEFAULT_CELL_OPTIONS,
  STITCH_INITS,
  STITCH_MODES,
  STITCH_SCHEDULES,
  checkBatchNormPlace,
  pairSpec,
  runCell,
} from './cell.js';
import { FLAT_FROMS } from './plan.js';
import { StitchContext } from './context.js';
import { lsqTooLarge } from './lsq.js';
import { fileHash } from '../onnx/metadata.js';

export interface GridSpec {
  /** sender and receiver model files */
  a: string;
  b: string;
  /** dataset spec (training split trains stitches, test split scores them) */
  data: string;
  /** sender / receiver cut names (default: every block and the classifier, see cuts.ts) */
  senders?: string[];
  receivers?: string[];
  /** pair kinds (default: trained only; `controls` adds the three random ones) */
  kinds?: PairKind[];
  options?: Partial<CellOptions>;
  trainLimit?: number;
  testLimit?: number;
  mean?: number[];
  std?: number[];
  /** cap on cached activations per worker, MiB (default 1024) */
  cacheMb?: number;
  /**
   * Named cuts that no stitch can join are an error unless this is set; then those
   * cells stay empty (as they always do with the default cuts).
   */
  allowSkipped?: boolean;
  /**
   * A folder holding a grid computed with other models, data or options is refused
   * unless this is set; then that grid's files are removed and the grid starts afresh.
   * (A grid with the same ones is always continued.)
   */
  overwrite?: boolean;
}

export interface GridRunOptions {
  /** parallel child processes (default 1: run in this process) */
  workers?: number;
  /** ONNX Runtime threads per worker (default: all cores with one worker, 1 with several) */
  threads?: number;
  session?: SessionOptions;
  /** stop after this many cells (this process; for time-boxed runs and tests) */
  stopAfter?: number;
  /** runs the pending cells elsewhere (modelsmith's queue: src/queue/stitch.ts) instead of local processes */
  dispatch?: (grid: StitchGrid, opts: GridRunOptions) => Promise<void>;
}

export interface GridCell {
  id: string;
  kind: PairKind;
  /** row (sender) and column (receiver) index */
  i: number;
  j: number;
  file: string;
  /** why the cell cannot be computed (shapes that no stitch joins); null value in the matrix */
  skipped?: string;
  /** the same as an error, thrown when the caller named the cell (options naming the user's terms) */
  skipError?: UserError;
}

interface GridFile {
  version: 1;
  fingerprint: string;
  spec: Required<Pick<GridSpec, 'a' | 'b' | 'data'>> & GridSpec;
  options: CellOptions;
  kinds: PairKind[];
  senders: StitchCut[];
  receivers: StitchCut[];
  models: { a: string; b: string };
}

export class StitchGrid {
  readonly cells: GridCell[];
  private constructor(
    readonly dir: string,
    readonly file: GridFile,
  ) {
    this.cells = planCells(dir, file);
  }

  /**
   * Opens (or starts) a grid in `dir`. A folder holding a grid with other models, data or
   * options is refused; more kinds or cuts than before just add cells.
   *
   * @example
   *   const grid = await StitchGrid.open('grid', { a: 'a.onnx', b: 'b.onnx', data: 'fashion-mnist-sample', kinds: [...PAIR_KINDS] });
   *   await grid.run({ workers: 2 });
   *   const m = await grid.collect();
   */
  static async open(dir: string, spec: GridSpec, open: typeof openDataset = openDataset): Promise<StitchGrid> {
    const a = openModel(spec.a),
      b = openModel(spec.b);
    const options: CellOptions = { ...DEFAULT_CELL_OPTIONS, ...spec.options };
    checkOptions(options);
    const senders = chooseCuts(a, spec.senders, defaultSenders, spec.a, 'sender');
    const receivers = chooseCuts(b, spec.receivers, defaultReceivers, spec.b, 'receiver');
    const kinds = spec.kinds ?? ['trained'];
    const models = { a: fileHash(spec.a), b: fileHash(spec.b) };
    const abs = { ...spec, a: resolve(spec.a), b: resolve(spec.b) };
    const fingerprint = hash({
      models,
      data: spec.data,
      options,
      trainLimit: spec.trainLimit ?? null,
      testLimit: spec.testLimit ?? null,
      mean: spec.mean ?? null,
      std: spec.std ?? null,
    });
    const path = join(dir, 'grid.json');
    const old = existsSync(path) ? readGrid(path) : undefined;
    if (old && old.fingerprint !== fingerprint && !spec.overwrite) {
      const why = describeDifference(old, { models, spec: abs, options });
      throw new OptionError(
        (o) =>
          `${dir} holds a stitching grid computed with other models, data or options (${why}); ` +
          `start afresh with ${o('overwrite')} (discards its finished cells) or use another ${o('out')} folder`,
      );
    }
    const file: GridFile = { version: 1, fingerprint, spec: abs, options, kinds, senders, receivers, models };
    const grid = new StitchGrid(dir, file);
    if ((spec.senders?.length || spec.receivers?.length) && !spec.allowSkipped) {
      const bad = grid.cells.find((c) => c.skipped);
      if (bad) throw bad.skipError!;
    }
    await checkGridInputs(a, b, abs, options, open);
    // everything is checked: only now is anything removed or created
    if (old && old.fingerprint !== fingerprint) removeGridFiles(dir);
    mkdirSync(join(dir, 'cells'), { recursive: true });
    writeJsonAtomic(path, file);
    return grid;
  }

  /** Reopens a grid folder as written by open() (workers use this). */
  static load(dir: string): StitchGrid {
    return new StitchGrid(dir, readGrid(join(dir, 'grid.json')));
  }

  get done(): GridCell[] {
    return this.cells.filter((c) => !c.skipped && existsSync(c.file));
  }

  get pending(): GridCell[] {
    return this.cells.filter((c) => !c.skipped && !existsSync(c.file));
  }

  /** Runs every pending cell; returns how many ran. */
  async run(opts: GridRunOptions = {}): Promise<{ ran: number; skipped: number }> {
    const before = this.done.length;
    const pending = this.pending.length;
    info(`stitching grid ${this.dir}: ${this.cells.length} cells, ${before} already done, ${pending} to run`);
    rmSync(join(this.dir, 'claims'), { recursive: true, force: true });
    const workers = Math.max(1, Math.min(opts.workers ?? 1, pending || 1));
    if (opts.dispatch) await opts.dispatch(this, opts);
    else if (workers === 1) await runWorker(this, { ...opts, session: { ...opts.session, ...(opts.threads ? { threads: opts.threads } : {}) } });
    else await spawnWorkers(this.dir, workers, opts);
    return { ran: this.done.length - before, skipped: before };
  }

  /** The result of every finished cell. */
  results(): Map<string, CellResult> {
    const out = new Map<string, CellResult>();
    for (const c of this.done) out.set(c.id, JSON.parse(readFileSync(c.file, 'utf8')) as CellResult);
    return out;
  }
}

/**
 * What the workers will check when they build their context (data, input shapes, image
 * limits, the receiver's classes), checked before the grid folder exists so that a
 * rejected run leaves nothing behind.
 */
async function checkGridInputs(a: Model, b: Model, spec: GridSpec, options: CellOptions, open: typeof openDataset): Promise<void> {
  const ctx = new StitchContext({
    a,
    b,
    aFile: spec.a,
    bFile: spec.b,
    train: await open(spec.data, 'train', { announce: false }),
    test: await open(spec.data, 'test', { announce: false }),
    ...(spec.trainLimit ? { trainLimit: spec.trainLimit } : {}),
    ...(spec.testLimit ? { testLimit: spec.testLimit } : {}),
    ...(spec.mean ? { mean: spec.mean } : {}),
    ...(spec.std ? { std: spec.std } : {}),
    seed: options.seed,
  });
  await ctx.release();
  const images = ctx.train.indices.length;
  if (options.mode !== 'lsq' && images < options.batchSize) {
    throw new OptionError((o) => `only ${images} training images, fewer than one batch of ${options.batchSize}; lower ${o('batchSize')}`);
  }
}

/**
 * Removes the files a grid wrote in its folder (--overwrite): grid.json, the cells, and
 * matrix.json with the heatmaps it lists. Nothing else in the folder is touched.
 */
export function removeGridFiles(dir: string): void {
  let listed: string[] = [];
  try {
    listed = (JSON.parse(readFileSync(join(dir, 'matrix.json'), 'utf8')) as { files?: unknown }).files as string[];
  } catch {
    /* no matrix yet */
  }
  // only plain names in this folder, whatever matrix.json says
  const own = (Array.isArray(listed) ? listed : [])
    .filter((f) => typeof f === 'string')
    .map((f) => basename(f))
    .filter((f) => existsSync(join(dir, f)));
  for (const f of ['grid.json', 'base.json', 'cells', 'claims', ...own, 'matrix.json']) rmSync(join(dir, f), { recursive: true, force: true });
}

export function checkOptions(o: CellOptions): void {
  if (!(Number.isFinite(o.momentum) && o.momentum >= 0 && o.momentum < 1))
    throw new OptionError((n) => `${n('momentum')} expects a number in [0, 1), got ${o.momentum}`);
  if (!(Number.isFinite(o.weightDecay) && o.weightDecay >= 0))
    throw new OptionError((n) => `${n('weightDecay')} expects a finite number >= 0, got ${o.weightDecay}`);
  checkBatchNormPlace(o);
  if (!STITCH_MODES.includes(o.mode)) throw new OptionError((n) => `${n('mode')} expects ${alternatives(STITCH_MODES)}, got "${o.mode}"`);
  if (!Number.isInteger(o.epochs) || o.epochs < 1) throw new OptionError((n) => `${n('epochs')} must be a positive integer, got ${o.epochs}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new OptionError((n) => `${n('batchSize')} must be a positive integer, got ${o.batchSize}`);
  if (!(o.lr > 0)) throw new OptionError((n) => `${n('lr')} must be positive, got ${o.lr}`);
  if (!STITCH_INITS.includes(o.init)) throw new OptionError((n) => `${n('init')} expects ${alternatives(STITCH_INITS)}, got "${o.init}"`);
  if (!FLAT_FROMS.includes(o.flat)) throw new OptionError((n) => `${n('flat')} expects ${alternatives(FLAT_FROMS)}, got "${o.flat}"`);
  if (!STITCH_SCHEDULES.includes(o.schedule)) throw new OptionError((n) => `${n('schedule')} expects ${alternatives(STITCH_SCHEDULES)}, got "${o.schedule}"`);
}

const safe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 60) + (/[^A-Za-z0-9._-]/.test(s) ? `-${hash(s).slice(0, 6)}` : '');

function planCells(dir: string, f: GridFile): GridCell[] {
  const cells: GridCell[] = [];
  // with both image limits known, a problem with many inputs but few rows may still be solved by its rows
  const images = f.spec.trainLimit && f.spec.testLimit ? { train: f.spec.trainLimit, test: f.spec.testLimit } : undefined;
  // row order: for each sender, its four kinds in turn; consecutive rows share the receiver sessions
  f.senders.forEach((s, i) => {
    for (const kind of f.kinds) {
      f.receivers.forEach((r, j) => {
        const id = `${kind}--${safe(s.name)}--${safe(r.name)}`;
        const cell: GridCell = { id, kind, i, j, file: join(dir, 'cells', `${id}.json`) };
        try {
          const spec = pairSpec({ kind, sender: s, receiver: r }, f.options);
          const tooLarge = (f.options.mode === 'lsq' || f.options.init === 'lsq') && lsqTooLarge(spec, f.options, images);
          if (tooLarge) throw tooLarge;
        } catch (e) {
          if (!(e instanceof UserError)) throw e;
          cell.skipError = withContext(`sender cut "${s.name}" of ${f.spec.a} -> receiver cut "${r.name}" of ${f.spec.b}: `, e);
          cell.skipped = cell.skipError.message;
        }
        cells.push(cell);
      });
    }
  });
  return cells;
}

function readGrid(path: string): GridFile {
  let g: GridFile;
  try {
    g = JSON.parse(readFileSync(path, 'utf8')) as GridFile;
  } catch (e) {
    throw new UserError(`${path} is not a readable stitching grid file: ${(e as Error).message.split('\n')[0]}`);
  }
  if (g.version !== 1 || !Array.isArray(g.senders) || !Array.isArray(g.receivers))
    throw new UserError(`${path} is not a stitching grid file of this modelsmith version`);
  return g;
}

function describeDifference(old: GridFile, now: Pick<GridFile, 'models' | 'spec' | 'options'>): string {
  if (old.models.a !== now.models.a) return `sender model ${old.spec.a} had other contents`;
  if (old.models.b !== now.models.b) return `receiver model ${old.spec.b} had other contents`;
  if (old.spec.data !== now.spec.data) return `data was ${old.spec.data}`;
  const diff = Object.keys(now.options).find(
    (k) => JSON.stringify((old.options as unknown as Record<string, unknown>)[k]) !== JSON.stringify((now.options as unknown as Record<string, unknown>)[k]),
  );
  if (diff) return `option ${diff} was ${JSON.stringify((old.options as unknown as Record<string, unknown>)[diff])}`;
  return 'image limits or normalisation differ';
}

function hash(v: unknown): string {
  return createHash('sha256').update(JSON.stringify(v)).digest('hex').slice(0, 16);
}

/** The rows (kind, sender) in grid order. */
function rows(grid: StitchGrid): { key: string; cells: GridCell[] }[] {
  const byRow = new Map<string, GridCell[]>();
  for (const c of grid.cells) {
    const key = `${c.kind}--${c.i}`;
    byRow.set(key, [...(byRow.get(key) ?? []), c]);
  }
  return [...byRow].map(([key, cells]) => ({ key, cells }));
}

/** Claims a row for this process: an exclusively created file, so two workers never share one. */
function claim(dir: string, key: string): boolean {
  mkdirSync(join(dir, 'claims'), { recursive: true });
  try {
    closeSync(openSync(join(dir, 'claims', `${key}.claim`), 'wx'));
    return true;
  } catch {
    return false;
  }
}

/** Runs cells of unclaimed rows until none is left (or stopAfter cells are done). */
export async function runWorker(grid: StitchGrid, opts: GridRunOptions = {}): Promise<number> {
  const f = grid.file;
  const needsWork = rows(grid).filter((r) => r.cells.some((c) => !c.skipped && !existsSync(c.file)));
  if (!needsWork.length) return 0;
  const ctx = await openGridContext(grid, opts.session ?? {});
  const sessions = new CellSessions();
  const total = grid.cells.filter((c) => !c.skipped).length;
  let ran = 0;
  try {
    for (const row of needsWork) {
      if (!claim(grid.dir, row.key)) continue;
      for (const c of row.cells) {
        if (c.skipped || existsSync(c.file)) continue;
        if (opts.stopAfter !== undefined && ran >= opts.stopAfter) return ran;
        const pair: StitchPair = { kind: c.kind, sender: f.senders[c.i]!, receiver: f.receivers[c.j]! };
        const r = await runCell(ctx, sessions, pair, f.options);
        writeJsonAtomic(c.file, { ...r, finishedAt: new Date().toISOString(), pid: process.pid });
        ran++;
        info(
          `cell ${grid.done.length}/${total} ${c.kind} ${pair.sender.name} -> ${pair.receiver.name}: accuracy ${pct(r.accuracy)}${r.fitError !== undefined ? `, fit error ${r.fitError.toExponential(2)}` : ''} (${r.seconds.toFixed(1)} s)`,
        );
      }
    }
    return ran;
  } finally {
    await sessions.release();
    await ctx.release();
  }
}

/** What a grid's cells run in: its models, image lists and random controls (the datasets opened by `open`). */
export async function openGridContext(grid: StitchGrid, session: SessionOptions, open: typeof openDataset = openDataset): Promise<StitchContext> {
  const f = grid.file;
  const ctx = new StitchContext({
    a: openModel(f.spec.a),
    b: openModel(f.spec.b),
    aFile: f.spec.a,
    bFile: f.spec.b,
    train: await open(f.spec.data, 'train'),
    test: await open(f.spec.data, 'test'),
    ...(f.spec.trainLimit ? { trainLimit: f.spec.trainLimit } : {}),
    ...(f.spec.testLimit ? { testLimit: f.spec.testLimit } : {}),
    ...(f.spec.mean ? { mean: f.spec.mean } : {}),
    ...(f.spec.std ? { std: f.spec.std } : {}),
    cacheMb: f.spec.cacheMb ?? 1024,
    session,
    seed: f.options.seed,
    randomBatchNorm: f.options.randomBatchNorm ?? 'data',
  });
  await ctx.prepare(f.kinds);
  return ctx;
}

const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

function spawnWorkers(dir: string, n: number, opts: GridRunOptions): Promise<void> {
  const threads = opts.threads ?? 1;
  const args = (k: number): string[] => [
    WORKER,
    dir,
    '--threads',
    String(threads),
    '--index',
    String(k),
    ...(opts.session?.provider ? ['--provider', opts.session.provider] : []),
    ...(opts.stopAfter !== undefined ? ['--stop-after', String(opts.stopAfter)] : []),
    ...(isQuiet() ? ['--quiet'] : []),
  ];
  info(`starting ${n} worker processes (${threads} ONNX Runtime thread${threads > 1 ? 's' : ''} each)`);
  const runs = Array.from(
    { length: n },
    (_, k) =>
      new Promise<{ worker: string; last: string } | undefined>((done) => {
        const child = spawn(process.execPath, args(k), { stdio: ['ignore', 'ignore', 'pipe'] });
        const forget = onInterrupt(() => child.kill('SIGTERM'));
        let last = '';
        child.stderr.on('data', (d: Buffer) => {
          const text = d.toString();
          if (!isQuiet())
            writeErr(
              text
                .split('\n')
                .filter(Boolean)
                .map((l) => `[worker ${k}] ${fromMarked(l).message}\n`)
                .join(''),
            );
          const lines = text.trim().split('\n');
          last = lines[lines.length - 1] ?? last;
        });
        child.on('close', (code, signal) => {
          forget();
          done(code === 0 ? undefined : { worker: `worker ${k} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`, last });
        });
      }),
  );
  return Promise.all(runs).then((errors) => {
    const bad = errors.filter((e) => e !== undefined);
    const line = (b: (typeof bad)[number], o: OptionNamer): string => (b.last ? `${b.worker}: ${messageIn(fromMarked(b.last), o)}` : b.worker);
    if (bad.length) throw new OptionError((o) => `${bad.map((b) => line(b, o)).join('; ')} (finished cells are kept; rerun to continue)`);
  });
}
