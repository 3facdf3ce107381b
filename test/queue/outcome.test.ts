/**
 * The coordinator reads jobs that workers are changing at the same moment. These tests
 * make the worst timing happen on purpose instead of waiting for it: a hand-driven BullMQ
 * worker (no processor; this test takes, finishes and puts back jobs itself) acts right
 * after the coordinator's k-th read of a job, for every k, while the coordinator checks
 * its jobs every 100 ms. Whatever the position, the coordinator must hand back the
 * worker's result, or its failure with the worker's reason, once.
 *
 * Before the fix, the coordinator read the job and then its state: a job that finished
 * between the two reads gave a state "completed" with the job read while it ran (no return
 * value), reported as "its worker returned an unreadable result" (the queue benchmark's
 * round trip, issue 18), and a refusal gave "failed" without its reason (the wrong line in
 * test/queue/jobs.test.ts's CLI refusal test).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Job, Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { BULL_PREFIX, Coordinator, JobFailed, QUEUE_NAME, jobId } from '../../src/queue/coordinator.js';
import { setQuiet } from '../../src/util/progress.js';
import { startRedis, waitFor } from './helpers.js';

setQuiet(true);
const redis = await startRedis();
const queueRedis = redis.client();
const queue = new Queue(QUEUE_NAME, { connection: queueRedis, prefix: BULL_PREFIX });
const workerRedis = redis.client();
// takes jobs only when this test asks (getNextJob); a long lock: nothing here stalls
const hand = new Worker(QUEUE_NAME, null, { connection: workerRedis, prefix: BULL_PREFIX, autorun: false, lockDuration: 600_000 });
hand.on('error', () => {});
const TOKEN = 'hand';
after(async () => {
  disarm();
  await hand.close(true);
  await queue.close();
  queueRedis.disconnect();
  workerRedis.disconnect();
  await redis.stop();
});

/**
 * The adversary: reads of job `id` by anyone but this test (the coordinator's getJob,
 * getJobState, job.getState) are counted, and `actions[k]` runs right after read k
 * returned, before its caller sees the answer. The job's completed and failed events are
 * held back: they arrive in milliseconds, but after a check that raced them, and a
 * coordinator must also be right without them (events are missed when Redis restarts).
 */
let adversary: { id: string; reads: number; actions: Map<number, () => Promise<void>>; fired: number[] } | undefined;
/** the action running now (reads meanwhile, by a check running concurrently, pass uncounted) */
let acting: Promise<void> | undefined;
const original = {
  getJob: Queue.prototype.getJob,
  getJobState: Queue.prototype.getJobState,
  getState: Job.prototype.getState,
  emit: QueueEvents.prototype.emit,
};
async function afterRead(id: string | undefined): Promise<void> {
  const a = adversary;
  if (!a || acting || id !== a.id) return;
  const k = ++a.reads;
  const act = a.actions.get(k);
  if (!act) return;
  a.fired.push(k);
  acting = act().finally(() => {
    acting = undefined;
  });
  await acting;
}

/** Disarms the adversary once its running action (if any) is done. */
async function stand(): Promise<void> {
  adversary = undefined;
  await acting;
}
Queue.prototype.getJob = async function (this: Queue, id: string) {
  const r = await original.getJob.call(this, id);
  await afterRead(id);
  return r;
};
Queue.prototype.getJobState = async function (this: Queue, id: string) {
  const r = await original.getJobState.call(this, id);
  await afterRead(id);
  return r;
};
Job.prototype.getState = async function (this: Job) {
  const r = await original.getState.call(this);
  await afterRead(this.id);
  return r;
};
QueueEvents.prototype.emit = function (this: QueueEvents, event: string | symbol, ...args: unknown[]) {
  const id = (args[0] as { jobId?: string } | undefined)?.jobId;
  if (adversary && id === adversary.id && (event === 'completed' || event === 'failed')) return false;
  return (original.emit as (this: QueueEvents, e: string | symbol, ...a: unknown[]) => boolean).call(this, event, ...args);
} as typeof QueueEvents.prototype.emit;
function disarm(): void {
  adversary = undefined;
  Queue.prototype.getJob = original.getJob;
  Queue.prototype.getJobState = original.getJobState;
  Job.prototype.getState = original.getState;
  QueueEvents.prototype.emit = original.emit;
}

let n = 0;
/** A fresh job as a coordinator elsewhere would have added it, taken by the hand worker (active). */
async function activeJob(): Promise<{ payload: unknown; id: string; job: Job }> {
  const payload = { spec: 'fashion-mnist-sample', nonce: `outcome-${++n}` };
  const id = jobId('data', payload);
  // nothing left waiting by an earlier case (one that failed): the hand worker takes this job
  await queue.drain();
  await queue.add('data', { v: 1, run: 'elsewhere', label: `job ${n}`, payload }, { jobId: id, attempts: 3, removeOnComplete: false, removeOnFail: false });
  const job = await hand.getNextJob(TOKEN, { block: false });
  assert.equal(job?.id, id, 'the hand worker took the job');
  return { payload, id, job: job! };
}

const envelope = (k: number): { worker: string; seconds: number; result: { k: number } } => ({ worker: 'hand', seconds: 0.25, result: { k } });

/** A coordinator that checks its jobs every 100 ms, for one test. */
async function coordinator<T>(fn: (c: Coordinator) => Promise<T>): Promise<T> {
  const c = await Coordinator.open(redis.url, 'outcome', 'outcome test', { checkSeconds: 0.1 });
  try {
    return await fn(c);
  } finally {
    await stand();
    await c.close();
  }
}

/** Submits and waits for the outcome (or gives up after 20 s: a job the coordinator lost track of). */
async function settle<R>(c: Coordinator, payload: unknown, label: string): Promise<{ ok: true; value: R } | { ok: false; error: Error }> {
  const p = c.submit<R>('data', payload, label, false).then(
    (d) => ({ ok: true as const, value: d.result }),
    (e: unknown) => ({ ok: false as const, error: e as Error }),
  );
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no outcome within 20 s`)), 20_000);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

const POSITIONS = [1, 2, 3, 4, 5, 6];

test('a job that completes right after any read of the coordinator is handed back with its result, not as unreadable', () =>
  coordinator(async (c) => {
    for (const k of POSITIONS) {
      const { payload, id, job } = await activeJob();
      const fired: number[] = [];
      adversary = { id, reads: 0, fired, actions: new Map([[k, () => job.moveToCompleted(envelope(k), TOKEN, false).then(() => undefined)]]) };
      const r = await settle<{ k: number }>(c, payload, `completed after read ${k}`);
      await stand();
      assert.deepEqual(fired, [k], `the job completed right after read ${k}`);
      assert.ok(r.ok, `completed after read ${k}: ${r.ok ? '' : r.error.message}`);
      assert.deepEqual(r.value, { k }, `completed after read ${k}`);
    }
    assert.equal(c.stats().failures, 0);
  }));

test("a job refused right after any read of the coordinator is reported once with the worker's reason", () =>
  coordinator(async (c) => {
    for (const k of POSITIONS) {
      const { payload, id, job } = await activeJob();
      const fired: number[] = [];
      const reason = `dataset refused after read ${k}`;
      adversary = { id, reads: 0, fired, actions: new Map([[k, () => job.moveToFailed(new UnrecoverableError(reason), TOKEN, false).then(() => undefined)]]) };
      const r = await settle(c, payload, `refused after read ${k}`);
      await stand();
      assert.deepEqual(fired, [k], `the job was refused right after read ${k}`);
      assert.ok(!r.ok, `refused after read ${k}: resolved`);
      assert.ok(r.error instanceof JobFailed, r.error.message);
      assert.equal(r.error.reason, reason, `refused after read ${k}`);
      // refused once: a job that failed while this run waited for it is this run's failure, not retried
      assert.equal(await original.getJobState.call(queue, id), 'failed', `refused after read ${k}: not retried`);
      assert.equal((await original.getJob.call(queue, id))!.attemptsMade, 1, `refused after read ${k}: not retried`);
    }
  }));

test('a finished job delivered a second time between the reads of the coordinator is waited for, not read as unreadable', () =>
  coordinator(async (c) => {
    for (const k of POSITIONS) {
      const { payload, id, job } = await activeJob();
      await job.moveToCompleted(envelope(k), TOKEN, false);
      const fired: number[] = [];
      adversary = {
        id,
        reads: 0,
        fired,
        actions: new Map([
          // put back in the queue (its return value and finish time go) and taken again by a worker ...
          [k, async () => void (await (await original.getJob.call(queue, id))!.retry('completed'))],
          [
            k + 1,
            async () => {
              const again = await hand.getNextJob(TOKEN, { block: false });
              assert.equal(again?.id, id);
              // ... which finishes it once more
              await again!.moveToCompleted(envelope(k), TOKEN, false);
            },
          ],
        ]),
      };
      const r = await settle<{ k: number }>(c, payload, `delivered again after read ${k}`);
      await stand();
      assert.ok(r.ok, `delivered again after read ${k}: ${r.ok ? '' : r.error.message}`);
      assert.deepEqual(r.value, { k });
      if (fired.length === 1) {
        // the coordinator took the first result before read k + 1: finish the second delivery for the next case
        const again = await hand.getNextJob(TOKEN, { block: false });
        assert.ok(again, `delivered again after read ${k}: the second delivery is waiting`);
        await again!.moveToCompleted(envelope(k), TOKEN, false);
      }
    }
    assert.equal(c.stats().failures, 0);
  }));

test('a result that is not a worker envelope is still reported as unreadable, once', () =>
  coordinator(async (c) => {
    const { payload, job } = await activeJob();
    await job.moveToCompleted({ bogus: true }, TOKEN, false);
    const r = await settle(c, payload, 'a bogus result');
    assert.ok(!r.ok && r.error instanceof JobFailed, 'rejected');
    assert.match(r.error.message, /a bogus result: its worker returned an unreadable result \(expected \{worker, seconds, result\}\)/);
  }));

test('a job that failed before a run asked for it (in an earlier run) is retried; its new result is handed back', () =>
  coordinator(async (c) => {
    const { payload, id, job } = await activeJob();
    await job.moveToFailed(new UnrecoverableError('failed in an earlier run'), TOKEN, false);
    const r = settle<{ k: number }>(c, payload, 'rerun');
    let again: Job | undefined;
    await waitFor(async () => (again = await hand.getNextJob(TOKEN, { block: false })) !== undefined, 'the failed job to be back in the queue', 20_000);
    assert.equal(again!.id, id);
    await again!.moveToCompleted(envelope(7), TOKEN, false);
    const out = await r;
    assert.ok(out.ok, out.ok ? '' : out.error.message);
    assert.deepEqual(out.value, { k: 7 });
    assert.equal(await original.getJobState.call(queue, id), 'completed');
  }));
