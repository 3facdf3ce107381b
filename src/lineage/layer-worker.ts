/**
 * A worker thread of the layer pool (layer-pool.ts): per layer, the weight statistics of
 * rows as the main thread reads them, then column blocks of the Gram product.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GramEngine, gramBlocks } from './gram.js';
import { weightMoments } from './kurtosis.js';
import { ABANDONED, NEXT_BLOCK, NEXT_ROW, ROWS_READY, type PoolJob, type PoolReply, type PoolWorkerInit } from './layer-pool.js';

const port = parentPort!;
const reply = (m: PoolReply): void => port.postMessage(m);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

class Abandoned extends Error {}

/** Blocks until the main thread has read `rows` rows. */
function waitRows(control: Int32Array, rows: number): void {
  for (;;) {
    const ready = Atomics.load(control, ROWS_READY);
    if (ready === ABANDONED) throw new Abandoned();
    if (ready >= rows) return;
    Atomics.wait(control, ROWS_READY, ready);
  }
}

async function work(job: PoolJob, engine: GramEngine | undefined): Promise<void> {
  const { n, p } = job;
  const stack = new Float32Array(job.stack, 0, n * p);
  const control = new Int32Array(job.control);
  const stats = new Float64Array(job.stats);
  for (let r = Atomics.add(control, NEXT_ROW, 1); r < n; r = Atomics.add(control, NEXT_ROW, 1)) {
    waitRows(control, r + 1);
    const m = weightMoments(stack.subarray(r * p, (r + 1) * p));
    stats[r] = m.kurtosis;
    stats[n + r] = m.sumSquares;
  }
  if (job.gram) {
    waitRows(control, n);
    const { count } = gramBlocks(n, p);
    for (let b = Atomics.add(control, NEXT_BLOCK, 1); b < count; b = Atomics.add(control, NEXT_BLOCK, 1))
      reply({ kind: 'block', block: b, gram: await engine!.blockGram(stack, n, p, b) });
  }
}

try {
  const init = workerData as PoolWorkerInit;
  const engine = init.gram ? await GramEngine.create(init.session) : undefined;
  // one layer at a time: the main thread posts the next only after this one is done
  port.on('message', (job: PoolJob) => {
    work(job, engine).then(
      () => reply({ kind: 'done' }),
      (e: unknown) => {
        if (!(e instanceof Abandoned)) reply({ kind: 'error', message: message(e) });
      },
    );
  });
  reply({ kind: 'ready' });
} catch (e) {
  reply({ kind: 'error', message: message(e) });
}
