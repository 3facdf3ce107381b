/**
 * A worker thread of the layer pool (layer-pool.ts): per layer, the weight statistics of
 * rows as the main thread reads them, then column blocks of the Gram product.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GramEngine } from './gram.js';
import { Abandoned, takeWork, type PoolJob, type PoolReply, type PoolWorkerInit } from './layer-pool.js';

const port = parentPort!;
const reply = (m: PoolReply): void => port.postMessage(m);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

try {
  const init = workerData as PoolWorkerInit;
  const engine = init.gram ? await GramEngine.create(init.session) : undefined;
  // one layer at a time: the main thread posts the next only after this one is done
  port.on('message', (job: PoolJob) => {
    takeWork(job, engine, (block, gram) => reply({ kind: 'block', block, gram })).then(
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
