/**
 * A worker thread of the layer pool (layer-pool.ts): per layer, the weight statistics of
 * rows as the main thread reads them, then column blocks of the Gram product and of the |dW| sums.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GramEngine } from './gram.js';
import { Abandoned, takeWork, type BlockSum, type PoolJob, type PoolReply, type PoolWorkerInit, type ThreadEngines } from './layer-pool.js';

const port = parentPort!;
const reply = (m: PoolReply): void => port.postMessage(m);
// a block's sums are a fresh array (GramEngine.blockGram, absDiffBlockSums): hand its memory over instead of copying it
const replyBlock = (sum: BlockSum, block: number, part: Float64Array): void =>
  port.postMessage({ kind: 'block', sum, block, part } satisfies PoolReply, [part.buffer as ArrayBuffer]);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

try {
  const init = workerData as PoolWorkerInit;
  const engines: ThreadEngines = { gram: init.gram ? await GramEngine.create(init.session) : undefined };
  // one layer at a time: the main thread posts the next only after this one is done
  port.on('message', (job: PoolJob) => {
    takeWork(job, engines, replyBlock).then(
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
