/**
 * Looking at and steering a queue from any machine: `modelsmith queue status|cancel|clear`.
 *
 * @example
 *   const s = await queueStatus('redis://localhost:6379');
 *   s.counts.waiting; s.workers[0].jobs; s.runs[0].run;
 *   await cancelRun('redis://localhost:6379', s.runs[0].run);
 */
import { Queue, type Job } from 'bullmq';
import { fromMarked, OptionError, UserError } from '../util/errors.js';
import { BlobStore, KEY_PREFIX } from './blobs.js';
import { checkRedis, connectRedis, parseQueueUrl } from './connection.js';
import { BULL_PREFIX, QUEUE_NAME, WORKER_STATS, cancelKey, liveWorkers, type WorkerInfo } from './coordinator.js';

export interface RunStatus {
  run: string;
  waiting: number;
  active: number;
  failed: number;
  completed: number;
}

export interface QueueStatus {
  queue: string;
  counts: { waiting: number; active: number; delayed: number; completed: number; failed: number };
  workers: WorkerInfo[];
  /** jobs finished by each worker that ever served this queue (until queue clear) */
  done: Record<string, number>;
  runs: RunStatus[];
  /** the latest failures: job label and error */
  failures: { run: string; label: string; reason: string; attempts: number }[];
}

async function open<T>(url: string, fn: (queue: Queue, redis: ReturnType<typeof connectRedis>) => Promise<T>): Promise<T> {
  const q = parseQueueUrl(url);
  await checkRedis(q);
  const redis = connectRedis(q);
  const queue = new Queue(QUEUE_NAME, { connection: redis, prefix: BULL_PREFIX });
  queue.on('error', () => {});
  try {
    return await fn(queue, redis);
  } finally {
    await queue.close().catch(() => undefined);
    redis.disconnect();
  }
}

const runOf = (j: Job): string => (typeof j.data?.run === 'string' ? j.data.run : '?');
const labelOf = (j: Job): string => (typeof j.data?.label === 'string' ? j.data.label : String(j.id));

/**
 * Job counts, live workers with their throughput, runs with work left, and recent failures.
 *
 * @example
 *   const s = await queueStatus('redis://queue-host:6379');
 *   console.log(s.counts, s.workers.length);
 */
export async function queueStatus(url: string, opts: { scan?: number } = {}): Promise<QueueStatus> {
  return open(url, async (queue, redis) => {
    const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
    const runs = new Map<string, RunStatus>();
    const add = (j: Job, k: keyof Omit<RunStatus, 'run'>): void => {
      const r = runs.get(runOf(j)) ?? { run: runOf(j), waiting: 0, active: 0, failed: 0, completed: 0 };
      r[k]++;
      runs.set(r.run, r);
    };
    const limit = (opts.scan ?? 10_000) - 1;
    for (const j of await queue.getJobs(['waiting', 'delayed', 'prioritized'], 0, limit)) if (j) add(j, 'waiting');
    for (const j of await queue.getJobs(['active'], 0, limit)) if (j) add(j, 'active');
    const failedJobs = (await queue.getJobs(['failed'], 0, limit)).filter(Boolean);
    for (const j of failedJobs) add(j, 'failed');
    for (const j of await queue.getJobs(['completed'], 0, limit)) if (j) add(j, 'completed');
    const done = Object.fromEntries(
      Object.entries(await redis.hgetall(WORKER_STATS))
        .filter(([k]) => k.endsWith(' done'))
        .map(([k, v]) => [k.slice(0, -' done'.length), Number(v)]),
    );
    return {
      queue: parseQueueUrl(url).display,
      counts: {
        waiting: (c['waiting'] ?? 0) + (c['prioritized'] ?? 0),
        active: c['active'] ?? 0,
        delayed: c['delayed'] ?? 0,
        completed: c['completed'] ?? 0,
        failed: c['failed'] ?? 0,
      },
      workers: await liveWorkers(redis),
      done,
      runs: [...runs.values()].sort((a, b) => a.run.localeCompare(b.run)),
      failures: failedJobs
        .sort((a, b) => (b.finishedOn ?? 0) - (a.finishedOn ?? 0))
        .slice(0, 10)
        .map((j) => ({ run: runOf(j), label: labelOf(j), reason: fromMarked((j.failedReason ?? '').split('\n')[0]!).message, attempts: j.attemptsMade })),
    };
  });
}

/**
 * Cancels a run (or, without one, every run with work left): its waiting jobs are
 * removed, workers refuse its jobs from now on, and its coordinator stops with a message.
 * Jobs already running finish; finished results stay (rerunning the command resumes).
 *
 * @example
 *   await cancelRun('redis://queue-host:6379', 'stitch-a-b');
 */
export async function cancelRun(url: string, run?: string): Promise<{ runs: string[]; removed: number }> {
  return open(url, async (queue, redis) => {
    const waiting = (await queue.getJobs(['waiting', 'delayed', 'prioritized', 'active'])).filter(Boolean);
    const runs = run ? [run] : [...new Set(waiting.map(runOf))];
    if (run && !waiting.some((j) => runOf(j) === run)) {
      const known = [...new Set(waiting.map(runOf))];
      if (!(await queue.getJobs(['completed', 'failed'], 0, 10_000)).some((j) => j && runOf(j) === run)) {
        throw new UserError(`the queue has no run "${run}"${known.length ? `; runs with work left: ${known.join(', ')}` : ''}`);
      }
    }
    for (const r of runs) await redis.set(cancelKey(r), new Date().toISOString(), 'EX', 7 * 24 * 3600);
    let removed = 0;
    for (const j of waiting) {
      if (!runs.includes(runOf(j)) || (await j.getState()) === 'active') continue;
      await j.remove().then(
        () => removed++,
        () => undefined,
      );
    }
    return { runs, removed };
  });
}

/**
 * Empties the queue: every job, result and blob (refused while jobs run, unless forced).
 *
 * @example
 *   await clearQueue('redis://queue-host:6379');
 */
export async function clearQueue(url: string, force = false): Promise<{ blobs: number }> {
  return open(url, async (queue, redis) => {
    const active = await queue.getActiveCount();
    if (active && !force)
      throw new OptionError((o) => `${active} job${active > 1 ? 's are' : ' is'} running; cancel the runs and wait, or clear with ${o('force')}`);
    await queue.obliterate({ force: true });
    const blobs = await new BlobStore(redis).clear();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${KEY_PREFIX}cancel:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    await redis.del(WORKER_STATS);
    return { blobs };
  });
}
