/**
 * The coordinator's side of a `--queue` run: enqueue one BullMQ job per cell, row or
 * model, keyed by the content hash of its payload, and hand each result back to the
 * command as it arrives, exactly once.
 *
 * - Idempotent: a job id is `<kind>.<sha256 of the payload>`, so adding a job that exists
 *   (a restarted coordinator, a second run of the same grid) adds nothing, and a finished
 *   one hands back its stored result at once instead of running again.
 * - At-least-once: workers' jobs that stall (a killed worker) are retried by BullMQ; a
 *   result that arrives twice (an event and a state check, or a job run twice) is
 *   delivered to the command once.
 * - Robust to Redis restarts: besides BullMQ's completion events, outstanding jobs are
 *   checked periodically; a job Redis lost (restarted without persistence) is added again
 *   with its blobs.
 * - Failures: a job that fails for good (a UserError on the worker, or after its retries)
 *   is reported once with its error; rerunning the command retries it once.
 *
 * @example
 *   const c = await Coordinator.open('redis://localhost:6379', 'stitch-1a2b', 'stitch grid');
 *   const ref = await c.putFile('a.onnx');
 *   c.track(2);
 *   const [r1, r2] = await Promise.all([c.submit('stitch-cell', p1, 'cell 1'), c.submit('stitch-cell', p2, 'cell 2')]);
 *   await c.close();
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { Queue, QueueEvents, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { UserError } from '../util/errors.js';
import { info, progress, warn, type Progress } from '../util/progress.js';
import { BlobStore, KEY_PREFIX, type BlobRef } from './blobs.js';
import { checkRedis, connectRedis, parseQueueUrl, type QueueUrl } from './connection.js';
import { canonicalJson, substitute } from './schema.js';
import type { DataIdentity, DataRef, JobData, JobReturn } from './jobs.js';

export const QUEUE_NAME = 'jobs';
export const BULL_PREFIX = 'modelsmith';

/** Retries for errors that may pass (a lost connection); UserErrors fail at once. */
export const JOB_ATTEMPTS = 3;

export const cancelKey = (run: string): string => `${KEY_PREFIX}cancel:${run}`;
export const workerKey = (name: string): string => `${KEY_PREFIX}worker:${name}`;
export const WORKER_STATS = `${KEY_PREFIX}stats`;

/** `<kind>.<hash>`: the same job from any coordinator gets the same id. */
export function jobId(kind: string, payload: unknown): string {
  return `${kind}.${createHash('sha256')
    .update(`${kind}\n${canonicalJson(payload)}`)
    .digest('hex')
    .slice(0, 40)}`;
}

export interface CoordinatorOptions {
  /** seconds between checks of outstanding jobs (default 5) */
  checkSeconds?: number;
}

/** A job's result and who computed it. */
export interface Done<R> {
  result: R;
  worker: string;
  seconds: number;
}

/** A job that failed for good: its label and the worker's error. */
export class JobFailed extends UserError {
  constructor(
    readonly label: string,
    readonly reason: string,
  ) {
    super(`${label}: ${reason}`);
  }
}

interface Waiter {
  kind: string;
  data: JobData;
  resolve: (r: Done<unknown>) => void;
  reject: (e: Error) => void;
}

export class Coordinator {
  readonly blobs: BlobStore;
  private readonly waiters = new Map<string, Waiter>();
  /** blob files this run needs, to put back if Redis lost them */
  private readonly files = new Map<string, string>();
  /** blob:<sha256> -> the coordinator's own file name, for results and messages */
  readonly names = new Map<string, string>();
  private readonly perWorker = new Map<string, { jobs: number; seconds: number }>();
  private bar: Progress | undefined;
  private failures = 0;
  private duplicates = 0;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  private readonly started = Date.now();

  private constructor(
    readonly url: QueueUrl,
    readonly run: string,
    readonly label: string,
    private readonly redis: Redis,
    private readonly queue: Queue,
    private readonly events: QueueEvents,
    private readonly eventsRedis: Redis,
    opts: CoordinatorOptions,
  ) {
    this.blobs = new BlobStore(redis);
    events.on('completed', ({ jobId: id, returnvalue }) => this.completed(id, returnvalue));
    events.on('failed', ({ jobId: id }) => {
      void this.checkOne(id);
    });
    events.on('error', () => {});
    this.timer = setInterval(
      () => {
        void this.checkAll();
      },
      (opts.checkSeconds ?? 5) * 1000,
    );
  }

  /** Connects (failing with one line when Redis cannot be reached) and clears an earlier cancel of this run. */
  static async open(url: string, run: string, label: string, opts: CoordinatorOptions = {}): Promise<Coordinator> {
    const q = parseQueueUrl(url);
    await checkRedis(q);
    const redis = connectRedis(q);
    const queue = new Queue(QUEUE_NAME, { connection: redis, prefix: BULL_PREFIX });
    queue.on('error', () => {});
    const eventsRedis = connectRedis(q);
    const events = new QueueEvents(QUEUE_NAME, { connection: eventsRedis, prefix: BULL_PREFIX, autorun: true });
    await events.waitUntilReady();
    await redis.del(cancelKey(run));
    const c = new Coordinator(q, run, label, redis, queue, events, eventsRedis, opts);
    const workers = await liveWorkers(redis);
    info(
      `${label}: queue ${q.display}, run ${run} (${workers.length ? `${workers.length} worker${workers.length > 1 ? 's' : ''} connected` : 'no worker connected yet: start some with modelsmith worker --queue <url>'});` +
        ` cancel with: modelsmith queue cancel ${q.display} --run ${run}`,
    );
    return c;
  }

  /** Stores a model file as a blob (once) and remembers its name for results. */
  async putFile(path: string): Promise<BlobRef> {
    const ref = await this.blobs.putFile(path);
    this.files.set(ref.sha256, path);
    this.names.set(`blob:${ref.sha256}`, path);
    return ref;
  }

  /**
   * What the dataset spec means on the workers: one worker resolves it, and every job of
   * this run carries the answer so that a worker resolving it differently refuses.
   */
  async data(spec: string): Promise<DataRef> {
    return (await this.dataWithSources(spec)).ref;
  }

  /** data(), and which files the worker read (its source lines). */
  async dataWithSources(spec: string): Promise<{ ref: DataRef; sources: { train: string; test: string } }> {
    const { result: r } = await this.submit<DataIdentity & { sources: { train: string; test: string } }>(
      'data',
      { spec, nonce: `${this.run}:${Date.now()}:${process.pid}` },
      `dataset ${spec}`,
      false,
    );
    info(`${this.label}: dataset ${spec} on the workers: ${r.sources.test}`);
    return { ref: { spec, expect: { classes: r.classes, shape: r.shape, train: r.train, test: r.test } }, sources: r.sources };
  }

  /** Shows progress over `total` jobs (cells done/total, ETA, per-worker throughput, failures). */
  track(total: number, what = 'jobs'): void {
    this.bar = progress(`${this.label} (${what})`, total);
  }

  /**
   * Enqueues a job (or finds it finished) and resolves with its result; rejects with
   * JobFailed when it fails for good. `tracked` jobs advance the progress display.
   */
  submit<R>(kind: string, payload: unknown, label: string, tracked = true): Promise<Done<R>> {
    const id = jobId(kind, payload);
    const data: JobData = { v: 1, run: this.run, label, payload };
    return new Promise<Done<R>>((resolve, reject) => {
      const prior = this.waiters.get(id);
      if (prior) {
        // the same job twice in one run: both callers get its one result
        this.waiters.set(id, {
          ...prior,
          resolve: (r) => {
            prior.resolve(r);
            resolve(r as Done<R>);
          },
          reject: (e) => {
            prior.reject(e);
            reject(e);
          },
        });
        return;
      }
      this.waiters.set(id, {
        kind,
        data,
        resolve: (r) => {
          if (tracked) this.tick();
          resolve(r as Done<R>);
        },
        reject: (e) => {
          if (tracked) this.tick();
          reject(e);
        },
      });
      this.enqueue(id, kind, data).catch((e: unknown) => this.fail(id, (e as Error).message));
    });
  }

  private async enqueue(id: string, kind: string, data: JobData): Promise<void> {
    // Whether the job failed before this run added it, asked before the add: a job this add creates may fail
    // (a refusal) within milliseconds, which is this run's failure to report, not an earlier one to retry.
    if ((await this.queue.getJobState(id)) === 'failed') {
      // failed in an earlier run of the command: rerunning it retries once
      const retried = await (await this.queue.getJob(id))?.retry('failed').then(
        () => true,
        () => false,
      );
      if (retried) return;
    }
    await this.queue.add(kind, data, jobOptions(id));
    await this.checkOne(id);
  }

  /** Reads a job's outcome and settles its waiter when it has finished. */
  private async checkOne(id: string): Promise<void> {
    const w = this.waiters.get(id);
    if (!w) return;
    const o = await readOutcome(this.queue, id);
    if (o.state === 'missing') {
      if (await this.redis.exists(cancelKey(this.run))) return this.cancelled();
      // Redis lost it (restarted without persistence): put its blobs back and add it again
      for (const [sha, path] of this.files) if (!(await this.blobs.has(sha))) await this.blobs.putFile(path);
      await this.queue.add(w.kind, w.data, jobOptions(id));
      return;
    }
    if (o.state === 'completed') this.completed(id, o.value);
    else if (o.state === 'failed') this.fail(id, o.reason);
  }

  private async checkAll(): Promise<void> {
    if (this.checking || !this.waiters.size) return;
    this.checking = true;
    try {
      if (await this.redis.exists(cancelKey(this.run))) return this.cancelled();
      // a fallback for missed events (a Redis restart): in batches, so that thousands of jobs take few round trips
      const ids = [...this.waiters.keys()];
      for (let i = 0; i < ids.length; i += 100) await Promise.all(ids.slice(i, i + 100).map((id) => this.checkOne(id)));
    } catch {
      // Redis unreachable for now: the next check tries again
    } finally {
      this.checking = false;
    }
  }

  private completed(id: string, raw: unknown): void {
    const w = this.waiters.get(id);
    if (!w) {
      this.duplicates++;
      return;
    }
    let ret: JobReturn;
    try {
      ret = checkReturn(typeof raw === 'string' ? JSON.parse(raw) : raw);
    } catch (e) {
      return this.fail(id, `its worker returned an unreadable result (${(e as Error).message})`);
    }
    this.waiters.delete(id);
    const s = this.perWorker.get(ret.worker) ?? { jobs: 0, seconds: 0 };
    s.jobs++;
    s.seconds += ret.seconds;
    this.perWorker.set(ret.worker, s);
    w.resolve({ result: substitute(ret.result, this.names), worker: ret.worker, seconds: ret.seconds });
  }

  private fail(id: string, reason: string): void {
    const w = this.waiters.get(id);
    if (!w) return;
    this.waiters.delete(id);
    this.failures++;
    const text = substitute(reason, this.names).split('\n')[0]!;
    warn(`${this.label}: ${w.data.label} failed: ${text}`);
    w.reject(new JobFailed(w.data.label, text));
  }

  private cancelled(): void {
    for (const [id, w] of [...this.waiters]) {
      this.waiters.delete(id);
      w.reject(new UserError(`run ${this.run} was cancelled (modelsmith queue cancel); finished results are kept, rerun the command to continue`));
    }
  }

  private tick(): void {
    if (!this.bar) return;
    const hours = Math.max(1e-9, (Date.now() - this.started) / 3.6e6);
    const workers = [...this.perWorker].map(([name, s]) => `${name} ${s.jobs} (${(s.jobs / hours).toFixed(0)}/h)`).join(', ');
    this.bar.tick(1, `${workers}${this.failures ? `; ${this.failures} failed` : ''}`);
  }

  /** Per-worker counts of this run's results, and results that arrived more than once. */
  stats(): { workers: Record<string, { jobs: number; seconds: number }>; failures: number; duplicates: number } {
    return { workers: Object.fromEntries(this.perWorker), failures: this.failures, duplicates: this.duplicates };
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.bar?.done(this.failures ? `${this.failures} failed` : undefined);
    await this.events.close().catch(() => undefined);
    await this.queue.close().catch(() => undefined);
    this.redis.disconnect();
    this.eventsRedis.disconnect();
  }
}

function checkReturn(v: unknown): JobReturn {
  const r = v as Partial<JobReturn> | null;
  if (!r || typeof r !== 'object' || typeof r.worker !== 'string' || typeof r.seconds !== 'number' || !('result' in r)) {
    throw new Error('expected {worker, seconds, result}');
  }
  return r as JobReturn;
}

const jobOptions = (id: string): JobsOptions => ({
  jobId: id,
  attempts: JOB_ATTEMPTS,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: false,
  removeOnFail: false,
});

/** Where a job stands, with what it left when it finished. */
type Outcome = { state: 'missing' } | { state: 'pending' } | { state: 'completed'; value: unknown } | { state: 'failed'; reason: string };

/**
 * A job's state and the result it left, read so that the two belong together. BullMQ
 * moves a job to completed or failed and stores its return value or reason in one step
 * (a Lua script), so the job read after its state has that step's result. The other
 * order (job, then state) can pair a job read while it ran (no return value yet, no
 * reason) with the state after it finished: a trivial job finishing within those two
 * reads was reported as "its worker returned an unreadable result", a refused one as
 * failed without its reason (issue 18; test/queue/outcome.test.ts). A job put back in
 * the queue between the two reads (a second delivery: retried, or another run's rerun)
 * has lost its finish time: still pending.
 */
async function readOutcome(queue: Queue, id: string): Promise<Outcome> {
  const state = await queue.getJobState(id);
  const job = await queue.getJob(id);
  if (!job) return { state: 'missing' };
  if ((state !== 'completed' && state !== 'failed') || !job.finishedOn) return { state: 'pending' };
  return state === 'completed' ? { state, value: job.returnvalue } : { state, reason: job.failedReason || 'failed' };
}

/** Workers that reported within the last minute. */
export async function liveWorkers(redis: Redis): Promise<WorkerInfo[]> {
  const out: WorkerInfo[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', workerKey('*'), 'COUNT', 200);
    cursor = next;
    for (const k of keys) {
      const v = await redis.get(k);
      if (!v) continue;
      try {
        out.push(JSON.parse(v) as WorkerInfo);
      } catch {
        /* a foreign key: ignore */
      }
    }
  } while (cursor !== '0');
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** What a worker says about itself every few seconds (expires a minute after it stops). */
export interface WorkerInfo {
  name: string;
  started: string;
  concurrency: number;
  threads: number;
  jobs: number;
  failed: number;
  seconds: number;
  /** labels of the jobs it is running */
  current: string[];
}

export const defaultWorkerName = (): string => `${hostname()}:${process.pid}`;

/** Waits for every job; results in order, and the jobs that failed (one clear line each). */
export async function settleAll<R>(jobs: Promise<R>[]): Promise<{ results: (R | undefined)[]; failed: UserError[] }> {
  const settled = await Promise.allSettled(jobs);
  const failed: UserError[] = [];
  const results = settled.map((s) => {
    if (s.status === 'fulfilled') return s.value;
    if (s.reason instanceof UserError) failed.push(s.reason);
    else throw s.reason;
    return undefined;
  });
  return { results, failed };
}

/** One line for failed jobs: how many, and the first errors. */
export function failureMessage(failed: readonly UserError[], total: number, what: string): string {
  const shown = failed
    .slice(0, 3)
    .map((f) => f.message)
    .join('; ');
  return `${failed.length} of ${total} ${what} failed: ${shown}${failed.length > 3 ? '; ...' : ''} (finished results are kept; fix the cause and rerun the command, which retries them)`;
}
