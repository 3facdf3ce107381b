/**
 * Jobs as a worker sees them: crafted jobs are refused with a clear error, once, with
 * nothing fetched or written outside the worker's folder; a deterministically failing
 * job is reported once and not retried; a result delivered twice is taken once; a run
 * can be inspected and cancelled.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Queue, type Job } from 'bullmq';
import { tempDir } from '../helpers/paths.js';
import { packageRoot } from '../../src/util/paths.js';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { BlobStore, CHUNK_BYTES, sha256 } from '../../src/queue/blobs.js';
import { BULL_PREFIX, Coordinator, JobFailed, QUEUE_NAME, jobId } from '../../src/queue/coordinator.js';
import { cancelRun, queueStatus } from '../../src/queue/admin.js';
import { DEFAULT_CELL_OPTIONS } from '../../src/stitch/cell.js';
import { queueModels, runCliAsync, sleep, startRedis, startWorkerProcess, stopWorker, waitFor } from './helpers.js';

const dir = tempDir('queue-jobs-');
const [fa, fb] = queueModels(dir);
const redis = await startRedis();
const sandbox = tempDir('queue-sandbox-');
const w = startWorkerProcess(redis.url, 'guard', ['--work', join(sandbox, 'work')]);
const client = redis.client();
const queueRedis = redis.client();
const queue = new Queue(QUEUE_NAME, { connection: queueRedis, prefix: BULL_PREFIX });
after(async () => {
  await stopWorker(w);
  await queue.close();
  queueRedis.disconnect();
  client.disconnect();
  await redis.stop();
});

const blobs = new BlobStore(client);
const A = await blobs.putFile(fa!),
  B = await blobs.putFile(fb!);
const DATA = { spec: 'fashion-mnist-sample', expect: { classes: 10, shape: [1, 28, 28], train: 5000, test: 1000 } };
const grid = {
  a: A,
  b: B,
  data: DATA,
  senders: ['layer2.0'],
  receivers: ['features'],
  kinds: ['trained'],
  options: { ...DEFAULT_CELL_OPTIONS, mode: 'lsq' },
  trainLimit: 64,
  testLimit: 32,
  cacheMb: 64,
};
const cell = { kind: 'trained', sender: 'layer2.0', receiver: 'features' };

let n = 0;
/** Adds a raw job (as anyone with the Redis URL could) and waits until it has failed or finished. */
async function craft(name: string, payload: unknown): Promise<Job> {
  const id = `crafted-${++n}`;
  await queue.add(name, { v: 1, run: 'crafted', label: `crafted ${n}`, payload }, { jobId: id, attempts: 3, backoff: { type: 'fixed', delay: 100 } });
  let job: Job | undefined;
  for (let i = 0; i < 1200; i++) {
    job = await queue.getJob(id);
    const state = await job?.getState();
    // fetched again: the object read before the state changed holds no reason yet
    if (state === 'failed' || state === 'completed') return (await queue.getJob(id))!;
    await sleep(100);
  }
  throw new Error(`job ${id} did not finish`);
}

const files = (root: string): string[] => {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${relative(root, p)} ${statSync(p).size}`);
    }
  };
  if (existsSync(root)) walk(root);
  return out.sort();
};

test('crafted jobs are refused with one clear error each, not retried, with nothing fetched or written outside the work folder', async () => {
  const bogus = Buffer.from('not the model you are looking for');
  const claimed = sha256(Buffer.from('another content'));
  await client.set(`modelsmith:blob:${claimed}:0`, bogus);
  await client.set(`modelsmith:blob:${claimed}`, `${bogus.byteLength} 1`);
  const big = sha256(Buffer.from('big'));
  await client.set(`modelsmith:blob:${big}`, `${3 * CHUNK_BYTES} 3`);
  const outsideBefore = files(sandbox).filter((f) => !f.startsWith('work'));
  const cases: [string, string, unknown, RegExp][] = [
    [
      'a model given as a path',
      'stitch-cell',
      { grid: { ...grid, a: '/etc/passwd' }, cell },
      /model A must be a content-addressed blob reference \{sha256, bytes\}, got "\/etc\/passwd"/,
    ],
    [
      'a blob hash that is a path',
      'stitch-cell',
      { grid: { ...grid, b: { sha256: '../../../etc/passwd', bytes: 10 } }, cell },
      /model B\.sha256 must be 64 lowercase hex digits/,
    ],
    [
      'a blob whose content does not match its hash',
      'stitch-cell',
      { grid: { ...grid, a: { sha256: claimed, bytes: bogus.byteLength } }, cell },
      /model A: blob [0-9a-f]{12}\.\.\. failed verification: its content hashes to [0-9a-f]{12}/,
    ],
    [
      'an absurd blob size',
      'stitch-cell',
      { grid: { ...grid, a: { sha256: big, bytes: 1e15 } }, cell },
      /model A declares 1000000000000000 bytes, more than the limit of 4294967296 bytes/,
    ],
    [
      'a blob stored with another size than declared',
      'stitch-cell',
      { grid: { ...grid, a: { sha256: big, bytes: 10 } }, cell },
      /is stored as "50331648 3", not the 10 bytes the job declares/,
    ],
    ['an absurd activation cache', 'stitch-cell', { grid: { ...grid, cacheMb: 1e12 }, cell }, /grid\.cacheMb must be in 0\.\.\d+, got 1000000000000/],
    [
      'options the CLI refuses',
      'stitch-cell',
      { grid: { ...grid, options: { ...grid.options, epochs: -1 } }, cell },
      /--epochs must be a positive integer, got -1/,
    ],
    ['an oversized payload', 'stitch-cell', { grid, cell, pad: 'x'.repeat(5 * 2 ** 20) }, /the job's data is \d+ bytes, more than the 4194304 a job may carry/],
    [
      'a dataset folder outside the allowed ones',
      'stitch-cell',
      { grid: { ...grid, data: { ...DATA, spec: 'folder:/etc' } }, cell },
      /does not read dataset "folder:\/etc": it names \/etc, outside the folders this worker allows \(none/,
    ],
    [
      'a label file outside the allowed folders',
      'stitch-cell',
      { grid: { ...grid, data: { ...DATA, spec: 'fashion-mnist-sample::labels=file:/etc/passwd' } }, cell },
      /it names \/etc\/passwd, outside the folders/,
    ],
    [
      'a dataset path that climbs out',
      'cka',
      { a: A, b: B, data: { ...DATA, spec: `../../../${sandbox}` }, split: 'test', options: {} },
      /does not read dataset/,
    ],
    ['an unknown field', 'stitch-cell', { grid: { ...grid, out: '/tmp/x' }, cell }, /stitch-cell payload\.grid has an unexpected field "out"/],
    [
      'a zoo model that is not in the plan',
      'zoo-model',
      { data: DATA, options: { trees: 1, children: 1, depth: 1, steps: 1, rootSteps: 1 }, model: '../../evil' },
      /the zoo has no model "\.\.\/\.\.\/evil"/,
    ],
    ['an unknown kind', 'rm-rf', {}, /unknown job kind "rm-rf"/],
  ];
  for (const [what, kind, payload, expected] of cases) {
    const job = await craft(kind, payload);
    assert.equal(await job.getState(), 'failed', what);
    assert.match(job.failedReason, expected, `${what}: ${job.failedReason}`);
    assert.equal(job.failedReason.split('\n').length, 1, `${what}: one line`);
    assert.equal(job.attemptsMade, 1, `${what}: not retried`);
  }
  assert.ok(!existsSync(join(sandbox, 'work', 'blobs', claimed)), 'the mismatching blob was not kept');
  assert.deepEqual(
    files(join(sandbox, 'work', 'blobs')).filter((f) => !f.startsWith(A.sha256) && !f.startsWith(B.sha256)),
    [],
    'only the genuine blobs are in the cache',
  );
  assert.deepEqual(files(join(sandbox, 'work', 'jobs')), [], 'job folders are removed');
  assert.deepEqual(
    files(sandbox).filter((f) => !f.startsWith('work')),
    outsideBefore,
    'nothing written next to the work folder',
  );
  assert.equal(w.proc.exitCode, null, 'the worker is still running');
});

test('a job that fails deterministically fails once with its error; a result delivered twice is taken once', async () => {
  const c = await Coordinator.open(redis.url, 'faults', 'faults test', { checkSeconds: 1 });
  try {
    const bad = c.submit('stitch-cell', { grid, cell: { ...cell, sender: 'layer9.9' } }, 'cell with a bad cut');
    await assert.rejects(
      bad,
      (e: unknown) => e instanceof JobFailed && /cell with a bad cut: the grid has no cell trained layer9\.9 -> features/.test(e.message),
    );
    const failed = await queue.getJob(jobId('stitch-cell', { grid, cell: { ...cell, sender: 'layer9.9' } }));
    assert.equal(failed!.attemptsMade, 1, 'not retried');
    assert.equal(
      w
        .log()
        .split('\n')
        .filter((l) => /^job cell with a bad cut: failed/.test(l)).length,
      1,
      'run once',
    );

    const first = await c.submit<{ accuracy: number }>('stitch-cell', { grid, cell }, 'cell X');
    assert.ok(first.result.accuracy >= 0 && first.result.accuracy <= 1);
    // at-least-once delivery: the same job runs and completes again while the run goes on
    await (await queue.getJob(jobId('stitch-cell', { grid, cell })))!.retry('completed');
    const other = await c.submit<{ accuracy: number }>(
      'stitch-cell',
      { grid: { ...grid, receivers: ['layer4.0'] }, cell: { ...cell, receiver: 'layer4.0' } },
      'cell Y',
    );
    assert.ok(other.result.accuracy >= 0);
    await waitFor(
      () =>
        w
          .log()
          .split('\n')
          .filter((l) => /^job cell X: done/.test(l)).length === 2,
      'cell X to run twice',
    );
    await waitFor(() => c.stats().duplicates >= 1, 'the repeated result to arrive', 20_000);
    assert.equal(c.stats().workers['guard']!.jobs, 2, 'each result counted once');
  } finally {
    await c.close();
  }
});

test('a job failing on the worker through the CLI: reported once in one line, not retried', async () => {
  const g = join(dir, 'refused');
  // a dataset folder the coordinator reads but the worker was not allowed (no --data-dir): found only on the worker
  const data = join(dir, 'private', 'fashion-mnist');
  cpSync(join(packageRoot(), 'data', 'sample', 'fashion-mnist'), data, { recursive: true });
  const r = await runCliAsync([
    'stitch',
    fa!,
    fb!,
    '--data',
    data,
    '--senders',
    'layer2.0',
    '--receivers',
    'features',
    '--mode',
    'lsq',
    '--train-limit',
    '64',
    '--test-limit',
    '32',
    '--threads',
    '1',
    '--queue',
    redis.url,
    '-o',
    g,
  ]);
  assert.ok(isOneLineError({ code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr }), `${r.code}: ${r.stderr}`);
  const error = r.stderr.trim().split('\n').at(-1)!;
  assert.match(
    error,
    /^modelsmith: error: dataset \S*private\/fashion-mnist: worker guard does not read dataset "[^"]*private\/fashion-mnist": it names \S*private\/fashion-mnist, outside the folders this worker allows \(none; start it with --data-dir <dir>/,
  );
  const runs = w
    .log()
    .split('\n')
    .filter((l) => /^job dataset \S*private\/fashion-mnist: (started|failed)/.test(l));
  assert.equal(runs.length, 2, `started and failed once: ${runs.join(' | ')}`);
  assert.equal(
    w
      .log()
      .split('\n')
      .filter((l) => /^job cell trained--layer2\.0--features: started/.test(l)).length,
    0,
    'no cell was run on data the worker may not read',
  );
  assert.ok(!existsSync(join(g, 'matrix.json')));
});

test('queue status shows workers, runs and failures; cancel stops a run and removes its waiting jobs', async () => {
  const s = await queueStatus(redis.url);
  assert.equal(s.workers.length, 1);
  assert.equal(s.workers[0]!.name, 'guard');
  assert.ok(s.failures.some((f) => /unknown job kind/.test(f.reason)));
  const cli = runCli(['queue', 'status', redis.url, '--json']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(JSON.parse(cli.stdout).workers[0].name, 'guard');

  await queue.pause();
  const c = await Coordinator.open(redis.url, 'to-cancel', 'cancel test', { checkSeconds: 0.5 });
  try {
    const payloads = [1, 2, 3].map((k) => ({ grid: { ...grid, testLimit: 32 + k }, cell }));
    // expected before the cancel: the coordinator may notice it (every 0.5 s) before cancelRun returns
    const rejected = payloads.map((p, k) =>
      assert.rejects(c.submit('stitch-cell', p, `cell ${k + 1}`), /run to-cancel was cancelled \(modelsmith queue cancel\); finished results are kept/),
    );
    // all three in the queue (added, not run: the queue is paused) before the cancel, however slow the machine
    const ids = payloads.map((p) => jobId('stitch-cell', p));
    for (const id of ids) await waitFor(async () => (await queue.getJobState(id)) === 'waiting', `${id} to be waiting`);
    const r = await cancelRun(redis.url, 'to-cancel');
    assert.deepEqual(r.runs, ['to-cancel']);
    assert.equal(r.removed, 3);
    await Promise.all(rejected);
  } finally {
    await c.close();
    await queue.resume();
  }
  const unknown = runCli(['queue', 'cancel', redis.url, '--run', 'nosuch']);
  assert.ok(isOneLineError(unknown), unknown.stderr);
  assert.match(unknown.stderr, /the queue has no run "nosuch"/);
});

test('SIGTERM lets the running job finish, then the worker exits; a second SIGTERM hands the job back to another worker', async () => {
  await stopWorker(w);
  const c = await Coordinator.open(redis.url, 'signals', 'signals test', { checkSeconds: 1 });
  try {
    const polite = startWorkerProcess(redis.url, 'polite');
    const first = c.submit<{ accuracy: number }>('stitch-cell', { grid: { ...grid, testLimit: 40 }, cell }, 'cell for SIGTERM');
    await polite.waitFor(/job cell for SIGTERM: started/);
    polite.proc.kill('SIGTERM');
    assert.equal(await polite.exited, 0);
    assert.match(polite.log(), /worker polite: stopping after the running job[^]*job cell for SIGTERM: done in/);
    assert.ok((await first).result.accuracy >= 0);

    // a long lock: without the hand-back its job would wait a minute for stall detection
    const hasty = startWorkerProcess(redis.url, 'hasty', ['--lock-seconds', '60']);
    const handedBack = { grid: { ...grid, testLimit: 41 }, cell };
    const second = c.submit<{ accuracy: number }>('stitch-cell', handedBack, 'cell handed back');
    await hasty.waitFor(/job cell handed back: started/);
    hasty.proc.kill('SIGTERM');
    // the second signal once the first was handled (two sent at once may arrive as one)
    await hasty.waitFor(/worker hasty: stopping after the running job/);
    hasty.proc.kill('SIGTERM');
    await hasty.exited;
    assert.match(hasty.log(), /handed back 1 running job/);
    assert.doesNotMatch(hasty.log(), /job cell handed back: done/);
    // back in the queue for any worker now, not held under hasty's lock until it expires (a minute)
    assert.equal(await queue.getJobState(jobId('stitch-cell', handedBack)), 'waiting');
    const rescuer = startWorkerProcess(redis.url, 'rescuer');
    try {
      await rescuer.waitFor(/job cell handed back: done/);
      assert.ok((await second).result.accuracy >= 0);
    } finally {
      await stopWorker(rescuer);
    }
  } finally {
    await c.close();
  }
});
