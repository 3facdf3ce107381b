/**
 * `modelsmith worker`: takes jobs from the queue and runs them until stopped. Everything
 * a job brings is checked before it is used: its kind must be one of the table's, its
 * payload has a bounded size and the fields its kind expects, models come only as blobs
 * whose size is within the limit and whose hash matches, datasets only by named spec or
 * from folders the operator allowed, and the job writes only inside its own folder under
 * the work folder. A job that fails such a check (or any UserError) fails at once, with
 * its message, and is not retried; other errors are retried by BullMQ.
 *
 * Stopping: stop() (SIGTERM) takes no new job and lets the running ones finish;
 * stop(true) (a second signal, or the grace period) hands them back to the queue, so
 * another worker takes them at once; the process should then exit (their computations
 * still run in it).
 *
 * @example
 *   const w = await startWorker({ url: 'redis://localhost:6379', work: '/var/tmp/modelsmith-work', concurrency: 1, threads: 2 });
 *   process.on('SIGTERM', () => void w.stop());
 *   await w.finished;
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Dataset } from '../data/types.js';
import { openDataset } from '../data/resolve.js';
import { markedMessage, OptionError, UserError, withContext } from '../util/errors.js';
import { info } from '../util/progress.js';
import { BlobStore, checkBlobRef } from './blobs.js';
import { connectRedis, checkRedis, parseQueueUrl } from './connection.js';
import { BULL_PREFIX, QUEUE_NAME, WORKER_STATS, cancelKey, defaultWorkerName, workerKey, type WorkerInfo } from './coordinator.js';
import { checkDataSpec, checkIdentity, type DataRef, type JobReturn, type WorkerEnv } from './jobs.js';
import { JOB_KINDS } from './kinds.js';
import { LIMITS, fields, str, substitute } from './schema.js';

export interface WorkerOptions {
  url: string;
  /** the worker's own folder for blobs, caches and job folders */
  work: string;
  /** jobs at once (default 1) */
  concurrency?: number;
  /** ONNX Runtime threads per job (default: the cores divided by the concurrency) */
  threads?: number;
  provider?: string;
  /** folders whose datasets jobs may name by path (default none: named datasets only) */
  dataDirs?: string[];
  /** largest blob fetched, MiB (default 4096) */
  maxBlobMb?: number;
  /** how long a job stays locked without renewal before another worker may take it, ms (default 30000) */
  lockMs?: number;
  /** how often stalled jobs are looked for, ms (default 15000) */
  stallMs?: number;
  name?: string;
}

export interface RunningWorker {
  name: string;
  /** resolves when the worker has stopped */
  finished: Promise<void>;
  stop(handBack?: boolean): Promise<void>;
}

interface Pooled {
  key: string;
  value: object;
  release: (t: object) => Promise<void>;
}

/**
 * Starts a worker that runs queued jobs (stitch cells, CKA, LEGO, zoo models) until stopped.
 *
 * @example
 *   const worker = await startWorker({ url: 'redis://queue-host:6379', work: '/tmp/modelsmith-work' });
 *   process.on('SIGINT', () => void worker.stop());
 */
export async function startWorker(o: WorkerOptions): Promise<RunningWorker> {
  const q = parseQueueUrl(o.url);
  const concurrency = o.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256)
    throw new OptionError((n) => `${n('concurrency')} expects an integer in 1..256, got ${concurrency}`);
  const threads = o.threads ?? Math.max(1, Math.floor(availableParallelism() / concurrency));
  if (!Number.isInteger(threads) || threads < 1) throw new OptionError((n) => `${n('threads')} expects a positive integer, got ${threads}`);
  const maxBlobMb = o.maxBlobMb ?? 4096;
  if (!(maxBlobMb > 0)) throw new OptionError((n) => `${n('maxBlobMb')} expects a positive number, got ${maxBlobMb}`);
  const work = resolve(o.work);
  const dataDirs = (o.dataDirs ?? []).map((d) => resolve(d));
  await checkRedis(q);
  mkdirSync(work, { recursive: true });
  const name = o.name ?? defaultWorkerName();
  const redis: Redis = connectRedis(q);
  const blobs = new BlobStore(redis);
  const session = { threads, ...(o.provider ? { provider: o.provider } : {}) };
  const datasets = new Map<string, Promise<Dataset>>();
  const idle: Pooled[] = [];
  const state: WorkerInfo = { name, started: new Date().toISOString(), concurrency, threads, jobs: 0, failed: 0, seconds: 0, current: [] };
  const active = new Map<string, { job: Job; token: string | undefined }>();
  let handingBack = false;

  const heartbeat = async (): Promise<void> => {
    await redis.set(workerKey(name), JSON.stringify(state), 'EX', 60).catch(() => undefined);
  };

  const openData = async (spec: string, split: 'train' | 'test'): Promise<Dataset> => {
    checkDataSpec(spec, dataDirs, name);
    const key = `${spec}\n${split}`;
    let p = datasets.get(key);
    if (!p) {
      p = openDataset(spec, split, { announce: false }).catch((e: unknown) => {
        datasets.delete(key);
        if (e instanceof UserError) throw withContext(`worker ${name} cannot resolve dataset "${spec}": `, e);
        throw e;
      });
      datasets.set(key, p);
      // a worker serving many runs keeps the few datasets it used last
      while (datasets.size > 4) datasets.delete(datasets.keys().next().value as string);
    }
    return p;
  };
  const dataset = async (ref: DataRef, split: 'train' | 'test'): Promise<Dataset> => {
    const ds = await openData(ref.spec, split);
    checkIdentity(ds, split, ref, name);
    return ds;
  };

  const pooled = async <T extends object, R>(key: string, create: () => Promise<T>, release: (t: T) => Promise<void>, fn: (t: T) => Promise<R>): Promise<R> => {
    const at = idle.findIndex((p) => p.key === key);
    const item = at >= 0 ? idle.splice(at, 1)[0]! : { key, value: await create(), release: release as (t: object) => Promise<void> };
    try {
      return await fn(item.value as T);
    } finally {
      idle.push(item);
      // keep as many resources as jobs run at once; release the least recently used
      while (idle.length > concurrency) {
        const old = idle.shift()!;
        await old.release(old.value).catch(() => undefined);
      }
    }
  };

  const processor = async (job: Job, token?: string): Promise<JobReturn> => {
    const t0 = Date.now();
    const label = typeof job.data?.label === 'string' ? job.data.label.slice(0, 200) : String(job.id);
    const dir = join(work, 'jobs', `${createHash('sha256').update(String(job.id)).digest('hex').slice(0, 16)}-${process.pid}`);
    const names = new Map<string, string>();
    active.set(String(job.id), { job, token });
    state.current.push(label);
    void heartbeat();
    info(`job ${label}: started (${job.name}, ${job.id})`);
    try {
      const kind = JOB_KINDS[job.name];
      if (!kind)
        throw new UserError(
          `unknown job kind "${String(job.name).slice(0, 40)}" (this worker runs ${Object.keys(JOB_KINDS).join(', ')}; is it an older modelsmith?)`,
        );
      const size = Buffer.byteLength(JSON.stringify(job.data ?? null));
      if (size > LIMITS.payloadBytes) throw new UserError(`the job's data is ${size} bytes, more than the ${LIMITS.payloadBytes} a job may carry`);
      const data = fields(job.data, 'job data', ['v', 'run', 'label', 'payload']);
      if (data['v'] !== 1) throw new UserError(`job data version ${JSON.stringify(data['v'])} is not 1; is the coordinator another modelsmith version?`);
      const run = str(data['run'], 'job data.run', 200);
      if (await redis.exists(cancelKey(run))) throw new UserError(`run ${run} was cancelled`);
      const payload = kind.parse(data['payload']);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      const env: WorkerEnv = {
        name,
        work,
        dir,
        session,
        maxBlobBytes: maxBlobMb * 2 ** 20,
        blob: async (ref, what) => {
          const r = checkBlobRef(ref, what, maxBlobMb * 2 ** 20);
          const path = await blobs.fetchTo(r, join(work, 'blobs'), what);
          names.set(path, `blob:${r.sha256}`);
          return path;
        },
        put: (path) => blobs.putFile(path),
        openData,
        dataset,
        pooled,
      };
      const result = await kind.run(payload, env);
      // handed back meanwhile: another worker owns the job now
      if (handingBack) throw new Error('handed back to the queue');
      const seconds = (Date.now() - t0) / 1000;
      state.jobs++;
      state.seconds += seconds;
      await redis.hincrby(WORKER_STATS, `${name} done`, 1).catch(() => undefined);
      info(`job ${label}: done in ${seconds.toFixed(1)} s`);
      return { worker: name, seconds, result: substitute(result, names) };
    } catch (e) {
      state.failed++;
      info(`job ${label}: failed: ${substitute((e as Error)?.message ?? String(e), names).split('\n')[0]}`);
      // the coordinator names the options of an OptionError in its own caller's terms
      const msg = substitute(e instanceof Error ? markedMessage(e) : String(e), names);
      // a UserError (bad job, bad options, bad data) fails the same way on every try
      if (e instanceof UserError || e instanceof UnrecoverableError) throw new UnrecoverableError(msg);
      // only the message travels to the coordinator (the job's failedReason); with a `cause` attached the coordinator
      // received an empty reason (test/queue/jobs.test.ts, a job failing on the worker through the CLI)
      // eslint-disable-next-line preserve-caught-error
      throw new Error(msg);
    } finally {
      active.delete(String(job.id));
      state.current.splice(state.current.indexOf(label), 1);
      rmSync(dir, { recursive: true, force: true });
      void heartbeat();
    }
  };

  const workerRedis = connectRedis(q);
  const worker = new Worker(QUEUE_NAME, processor, {
    connection: workerRedis,
    prefix: BULL_PREFIX,
    concurrency,
    name,
    lockDuration: o.lockMs ?? 30_000,
    stalledInterval: o.stallMs ?? 15_000,
    maxStalledCount: 2,
    autorun: false,
  });
  worker.on('error', () => {});
  const beat = setInterval(() => {
    void heartbeat();
  }, 5000);
  await heartbeat();
  info(
    `worker ${name}: queue ${q.display}, ${concurrency} job${concurrency > 1 ? 's' : ''} at once, ${threads} ONNX Runtime thread${threads > 1 ? 's' : ''} each, work folder ${work}`,
  );
  const running = worker.run();
  let stopping: Promise<void> | undefined;
  const finish = async (): Promise<void> => {
    clearInterval(beat);
    for (const p of idle.splice(0)) await p.release(p.value).catch(() => undefined);
    await redis.del(workerKey(name)).catch(() => undefined);
    redis.disconnect();
    workerRedis.disconnect();
  };
  const finished = running.then(finish, async (e: unknown) => {
    await finish();
    throw e;
  });
  return {
    name,
    finished,
    stop: async (handBack = false) => {
      if (handBack) {
        handingBack = true;
        // give the running jobs back to the queue now instead of waiting for stall detection
        for (const { job, token } of active.values()) await job.moveToWait(token).catch(() => undefined);
        info(`worker ${name}: handed back ${active.size} running job${active.size === 1 ? '' : 's'}`);
        await worker.close(true).catch(() => undefined);
        return;
      }
      info(`worker ${name}: stopping after the running job${concurrency > 1 ? 's' : ''}`);
      stopping ??= worker.close();
      await stopping;
    },
  };
}
