/**
 * Worker threads for the per-layer work of a lineage measurement, so that reading the
 * weights, their statistics, the Gram product and the mean |dW| clustering distance use
 * every core instead of one. The main thread reads each model's layer (or column panel of
 * it, measure.ts) into a shared buffer and says which rows are ready; the workers take rows
 * as they come (weight moments, merged into each row's running moments), then, once every
 * row is in, column blocks of
 * the Gram product and of the |dW| sums (abs-diff.ts); the main thread, done reading,
 * joins in instead of waiting. Each thread has its own single-threaded ONNX Runtime
 * session and its own SIMD kernels, so a thread the OS pauses holds up only its own block,
 * not a GEMM split across threads. Work is handed out through shared atomic counters, so
 * whoever is free takes the next piece.
 *
 * The results do not depend on the number of workers: each row's statistics come from
 * the same function as on the main thread, and the blocks' partial sums are added in
 * block order (gram.ts addBlock), exactly as GramEngine.gram and absDiffSums add them.
 *
 * @example
 *   const pool = await LayerPool.create(2, { gram: true });
 *   const stack = pool.sharedFloats(n * p), moments = pool.sharedMoments(n);
 *   const run = pool.begin(stack, n, p, { stats: true, gram: true, absDiff: true }, moments);
 *   models.forEach((m, i) => { m.readInto(layer, stack.subarray(i * p, (i + 1) * p)); run.rowReady(i); });
 *   const { gram, absSums } = await run.finish();   // and each row's moments merged into `moments`
 *   await pool.close();
 */
import { Worker } from 'node:worker_threads';
import type { SessionOptions } from '../runtime/session.js';
import { UserError } from '../util/errors.js';
import { GramEngine, addBlock, gramBlocks } from './gram.js';
import { absDiffBlockSums, absDiffBlocks } from './abs-diff.js';
import { MOMENT_FIELDS, accumulateMoments } from './kurtosis.js';

/** Slots of the shared control array: rows read, next row to take, next block to take per block sum (BLOCK_SUMS). */
export const ROWS_READY = 0,
  NEXT_ROW = 1,
  NEXT_GRAM_BLOCK = 2,
  NEXT_ABS_BLOCK = 3;
const CONTROL_SLOTS = 4;
/** ROWS_READY is set to this when the layer is abandoned, so waiting workers give up. */
export const ABANDONED = -1;

/** What a worker is started with. */
export interface PoolWorkerInit {
  gram: boolean;
  session: SessionOptions;
}

/** What one layer (or one column panel of it, measure.ts) needs. */
export interface LayerWork {
  /** per row: the weights' moments merged into the row's running moments (kurtosis.ts; the selected layers) */
  stats: boolean;
  /** the Gram of the rows minus the first (GramEngine.gram; a pool made with `gram`) */
  gram: boolean;
  /** the sums of |row i - row j| (absDiffSums: the reference's clustering distance) */
  absDiff: boolean;
}

/** One layer's (or panel's) work, posted to every worker. */
export interface PoolJob {
  stack: SharedArrayBuffer;
  control: SharedArrayBuffer;
  /** the rows' running moments, MOMENT_FIELDS float64 per row (kurtosis.ts), when `work.stats` */
  moments?: SharedArrayBuffer;
  n: number;
  p: number;
  work: LayerWork;
}

/** Per thread: what computes the block sums (the |dW| kernels are per thread already, simd.ts). */
export interface ThreadEngines {
  gram?: GramEngine;
}

/** The sums computed over column blocks of a layer, one rule each: which counter hands out their blocks, how many, and how one is computed. */
const BLOCK_SUMS = {
  gram: {
    slot: NEXT_GRAM_BLOCK,
    count: (n: number, p: number) => gramBlocks(n, p).count,
    compute: (e: ThreadEngines, stack: Float32Array, n: number, p: number, b: number) => e.gram!.blockGram(stack, n, p, b),
  },
  absDiff: {
    slot: NEXT_ABS_BLOCK,
    count: (n: number, p: number) => absDiffBlocks(n, p).count,
    compute: (_: ThreadEngines, stack: Float32Array, n: number, p: number, b: number) => absDiffBlockSums(stack, n, p, b),
  },
} as const;
export type BlockSum = keyof typeof BLOCK_SUMS;
const BLOCK_SUM_KINDS = Object.keys(BLOCK_SUMS) as BlockSum[];

export type PoolReply =
  { kind: 'ready' } | { kind: 'block'; sum: BlockSum; block: number; part: Float64Array } | { kind: 'done' } | { kind: 'error'; message: string };

/** What a layer's work gave, each part when asked for (LayerWork; the rows' moments are merged into the array given to begin()). */
export interface LayerResult {
  /** n x n Gram of the rows minus the first (GramEngine.gram) */
  gram?: Float64Array;
  /** n x n sums of |row i - row j| for i < j (absDiffSums) */
  absSums?: Float64Array;
}

/** One layer in flight: the main thread marks rows ready, then finishes the layer with the workers. */
export interface LayerRun {
  rowReady(i: number): void;
  /** once every row is ready: takes rows and Gram blocks on this thread too, until the layer is done */
  finish(): Promise<LayerResult>;
}

/** Thrown in a thread waiting for rows of a layer that was abandoned. */
export class Abandoned extends Error {}

/** Blocks until the main thread has read `rows` rows (never blocks the main thread itself: it has read them all). */
function waitRows(control: Int32Array, rows: number): void {
  for (;;) {
    const ready = Atomics.load(control, ROWS_READY);
    if (ready === ABANDONED) throw new Abandoned();
    if (ready >= rows) return;
    Atomics.wait(control, ROWS_READY, ready);
  }
}

/**
 * One thread's share of a layer, the same on the main thread and in workers: rows' statistics
 * while there are rows left, then the blocks of each block sum asked for (handed to `block`)
 * while there are blocks left.
 */
export async function takeWork(job: PoolJob, engines: ThreadEngines, block: (sum: BlockSum, b: number, part: Float64Array) => void): Promise<void> {
  const { n, p, work } = job;
  const stack = new Float32Array(job.stack, 0, n * p);
  const control = new Int32Array(job.control);
  if (work.stats) {
    // each row is one thread's in a panel, and panels run one after another: merges into a row never race
    const moments = new Float64Array(job.moments!);
    for (let r = Atomics.add(control, NEXT_ROW, 1); r < n; r = Atomics.add(control, NEXT_ROW, 1)) {
      waitRows(control, r + 1);
      accumulateMoments(moments, r * MOMENT_FIELDS, stack.subarray(r * p, (r + 1) * p));
    }
  }
  for (const sum of BLOCK_SUM_KINDS) {
    if (!work[sum]) continue;
    waitRows(control, n);
    const { slot, count, compute } = BLOCK_SUMS[sum];
    const blocks = count(n, p);
    for (let b = Atomics.add(control, slot, 1); b < blocks; b = Atomics.add(control, slot, 1)) block(sum, b, await compute(engines, stack, n, p, b));
  }
}

/** A block sum being gathered: blocks are added in block order, early ones parked. */
interface Gathering {
  blocks: number;
  next: number;
  parked: Map<number, Float64Array>;
  total: Float64Array;
}

interface Pending {
  job: PoolJob;
  sums: Partial<Record<BlockSum, Gathering>>;
  /** threads through with the layer, the main thread included */
  done: number;
  resolve(r: LayerResult): void;
  reject(e: Error): void;
}

export class LayerPool {
  private current: Pending | undefined;
  private failure: Error | undefined;

  private constructor(
    private readonly workers: Worker[],
    readonly gram: boolean,
    private readonly engines: ThreadEngines,
  ) {
    for (const w of workers) {
      w.on('message', (m: PoolReply) => this.receive(m));
      w.on('error', (e) => this.fail(new UserError(`lineage: a worker thread failed: ${e.message}`)));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new UserError(`lineage: a worker thread stopped (exit code ${code})`));
      });
    }
  }

  /** `size` workers; with `gram`, each (and the main thread) opens a Gram session (single-threaded, else as `session` says). */
  static async create(size: number, opts: { gram: boolean; session?: SessionOptions }): Promise<LayerPool> {
    const init: PoolWorkerInit = { gram: opts.gram, session: { ...opts.session, threads: 1 } };
    const engine = opts.gram ? await GramEngine.create(init.session) : undefined;
    const engines: ThreadEngines = { gram: engine };
    const workers = Array.from({ length: size }, () => new Worker(new URL('./layer-worker.js', import.meta.url), { workerData: init }));
    try {
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((ready, failed) => {
              w.once('message', (m: PoolReply) =>
                m.kind === 'ready' ? ready() : failed(new UserError(m.kind === 'error' ? m.message : 'worker did not start')),
              );
              w.once('error', failed);
            }),
        ),
      );
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      await engine?.release();
      throw e instanceof UserError ? e : new UserError(`lineage: could not start worker threads: ${(e as Error).message}`);
    }
    return new LayerPool(workers, opts.gram, engines);
  }

  /** A float buffer the workers can read (layer stacks live in one). */
  sharedFloats(length: number): Float32Array {
    return new Float32Array(new SharedArrayBuffer(4 * length));
  }

  /** Running moments for n rows (MOMENT_FIELDS each, zero: nothing seen yet) the workers can merge into. */
  sharedMoments(n: number): Float64Array {
    return new Float64Array(new SharedArrayBuffer(8 * MOMENT_FIELDS * n));
  }

  /**
   * Starts one layer or panel of `stack` (from sharedFloats, n rows of p) with the work it needs;
   * rows are marked ready as they are read. With `work.stats`, each row's weights are merged
   * into `moments` (from sharedMoments).
   */
  begin(stack: Float32Array, n: number, p: number, work: LayerWork, moments?: Float64Array): LayerRun {
    if (this.current) throw new Error('LayerPool.begin: the previous layer is still running');
    if (!(stack.buffer instanceof SharedArrayBuffer) || stack.byteOffset !== 0) throw new Error('LayerPool.begin: the stack must start a shared buffer');
    if (work.gram && !this.gram) throw new Error('LayerPool.begin: a Gram from a pool made without Gram sessions');
    if (work.stats && !(moments?.buffer instanceof SharedArrayBuffer && moments.byteOffset === 0 && moments.length >= n * MOMENT_FIELDS))
      throw new Error('LayerPool.begin: row statistics need moments from sharedMoments(n)');
    const job: PoolJob = {
      stack: stack.buffer,
      control: new SharedArrayBuffer(CONTROL_SLOTS * 4),
      moments: work.stats ? (moments!.buffer as SharedArrayBuffer) : undefined,
      n,
      p,
      work,
    };
    const control = new Int32Array(job.control);
    const sums: Pending['sums'] = {};
    for (const sum of BLOCK_SUM_KINDS)
      if (work[sum]) sums[sum] = { blocks: BLOCK_SUMS[sum].count(n, p), next: 0, parked: new Map(), total: new Float64Array(n * n) };
    const result = new Promise<LayerResult>((resolve, reject) => {
      this.current = { job, sums, done: 0, resolve, reject };
    });
    // a failure may come before finish() awaits the result: it is reported there, not as an unhandled rejection
    result.catch(() => {});
    if (this.failure) this.fail(this.failure);
    else for (const w of this.workers) w.postMessage(job);
    const finish = async (): Promise<LayerResult> => {
      await takeWork(job, this.engines, (sum, block, part) => this.receive({ kind: 'block', sum, block, part }));
      this.receive({ kind: 'done' });
      return result;
    };
    return {
      rowReady(i: number): void {
        Atomics.store(control, ROWS_READY, i + 1);
        Atomics.notify(control, ROWS_READY);
      },
      finish,
    };
  }

  async close(): Promise<void> {
    if (this.current) {
      const control = new Int32Array(this.current.job.control);
      Atomics.store(control, ROWS_READY, ABANDONED);
      Atomics.notify(control, ROWS_READY);
    }
    this.current = undefined;
    this.failure ??= new Error('closed');
    await Promise.all(this.workers.map((w) => w.terminate()));
    await this.engines.gram?.release();
  }

  private receive(m: PoolReply): void {
    const run = this.current;
    if (m.kind === 'error') return this.fail(new UserError(m.message));
    if (!run) return;
    if (m.kind === 'block') {
      // add in block order: park blocks that arrive early
      const g = run.sums[m.sum]!;
      g.parked.set(m.block, m.part);
      for (let part = g.parked.get(g.next); part; part = g.parked.get(g.next)) {
        addBlock(g.total, part);
        g.parked.delete(g.next++);
      }
    } else if (m.kind === 'done' && ++run.done === this.workers.length + 1) {
      this.current = undefined;
      for (const [sum, g] of Object.entries(run.sums))
        if (g.next !== g.blocks) return run.reject(new Error(`LayerPool: ${g.next} of ${g.blocks} ${sum} blocks came back`));
      run.resolve({
        gram: run.sums.gram?.total,
        absSums: run.sums.absDiff?.total,
      });
    }
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const run = this.current;
    this.current = undefined;
    run?.reject(e);
  }
}
