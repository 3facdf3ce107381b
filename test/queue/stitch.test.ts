/**
 * Stitching grids through a real Redis and real worker processes: the queue gives the
 * local run's numbers, and survives a worker killed mid-job, a Redis restart and a
 * coordinator restart without redoing finished cells.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { queueModels } from './helpers.js';
import { clearQueue } from '../../src/queue/admin.js';
import { runCliAsync, sleep, startCli, startRedis, startWorkerProcess, stopWorker, waitFor, type TestWorker } from './helpers.js';

const dir = tempDir('queue-stitch-');
const [a, b] = queueModels(dir);
const redis = await startRedis({ persist: true });
after(() => redis.stop());

// 1 sender x 2 receivers x 4 pair kinds (the trained pair and the three random controls) = 8 least-squares cells
const GRID = [
  'stitch',
  a!,
  b!,
  '--data',
  'fashion-mnist-sample',
  '--senders',
  'layer2.0',
  '--receivers',
  'layer1.0,features',
  '--controls',
  '--random-bn',
  'init',
  '--mode',
  'lsq',
  '--batch',
  '32',
  '--train-limit',
  '96',
  '--test-limit',
  '64',
  '--threads',
  '1',
];
const CELLS = 8;

const cellFiles = (g: string): string[] =>
  existsSync(join(g, 'cells'))
    ? readdirSync(join(g, 'cells'))
        .filter((f) => f.endsWith('.json'))
        .sort()
    : [];
/** A cell's numbers: everything but when, where and how long. */
const numbers = (g: string, f: string): Record<string, unknown> => {
  const { seconds, finishedAt, pid, worker, ...rest } = JSON.parse(readFileSync(join(g, 'cells', f), 'utf8'));
  void seconds;
  void finishedAt;
  void pid;
  void worker;
  return rest;
};
const matrix = (g: string): Record<string, unknown> => {
  const m = JSON.parse(readFileSync(join(g, 'matrix.json'), 'utf8'));
  return { matrices: m.matrices, base: m.base, triangles: m.triangles, complete: m.complete, senders: m.senders, receivers: m.receivers };
};

const local = join(dir, 'local');
const localRun = runCli([...GRID, '-o', local, '--quiet']);
assert.equal(localRun.code, 0, localRun.stderr);

function assertEqualsLocal(g: string): void {
  assert.deepEqual(cellFiles(g), cellFiles(local));
  for (const f of cellFiles(local)) assert.deepEqual(numbers(g, f), numbers(local, f), f);
  assert.deepEqual(matrix(g), matrix(local));
}

const doneCount = (w: TestWorker, label: string): number =>
  w
    .log()
    .split('\n')
    .filter((l) => l === `job ${label}: done` || l.startsWith(`job ${label}: done in`)).length;

test('a grid run by 2 workers through the queue equals the local run number for number', async () => {
  const w1 = startWorkerProcess(redis.url, 'w1'),
    w2 = startWorkerProcess(redis.url, 'w2');
  try {
    const g = join(dir, 'two');
    const r = await runCliAsync([...GRID, '--queue', redis.url, '-o', g, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.ran, CELLS);
    assertEqualsLocal(g);
    const by = new Set(cellFiles(g).map((f) => JSON.parse(readFileSync(join(g, 'cells', f), 'utf8')).worker));
    assert.deepEqual([...by].sort(), ['w1', 'w2'], 'both workers computed cells');
  } finally {
    await Promise.all([stopWorker(w1), stopWorker(w2)]);
  }
});

test('a worker SIGKILLed mid-job: another worker takes its job after stall detection and the grid completes, equal', async () => {
  await clearQueue(redis.url);
  const g = join(dir, 'killed');
  const victim = startWorkerProcess(redis.url, 'victim');
  const run = runCliAsync([...GRID, '--queue', redis.url, '-o', g, '--quiet']);
  await victim.waitFor(/job cell [^\n]+: started/);
  const label = /job (cell [^\n]+): started/.exec(victim.log())![1]!;
  victim.proc.kill('SIGKILL');
  await victim.exited;
  assert.equal(doneCount(victim, label), 0, 'killed before the job finished');
  const rescuer = startWorkerProcess(redis.url, 'rescuer');
  try {
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assertEqualsLocal(g);
    assert.equal(doneCount(rescuer, label), 1, `${label} was retried by the other worker`);
  } finally {
    await stopWorker(rescuer);
  }
});

test('Redis restarted mid-run: workers and coordinator reconnect and the grid completes, equal', async () => {
  await clearQueue(redis.url);
  const g = join(dir, 'restart');
  const w = startWorkerProcess(redis.url, 'steady');
  try {
    const run = runCliAsync([...GRID, '--queue', redis.url, '-o', g, '--quiet']);
    await waitFor(() => cellFiles(g).length >= 2, 'two finished cells');
    await redis.stop();
    await sleep(1500);
    await redis.start();
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assertEqualsLocal(g);
  } finally {
    await stopWorker(w);
  }
});

test('a restarted coordinator collects what the workers finished meanwhile without running any cell again', async () => {
  await clearQueue(redis.url);
  const g = join(dir, 'coordinator');
  const w = startWorkerProcess(redis.url, 'alone');
  try {
    const first = startCli([...GRID, '--queue', redis.url, '-o', g, '--quiet']);
    await waitFor(() => cellFiles(g).length >= 3, 'three finished cells');
    first.proc.kill('SIGKILL');
    await first.done;
    const kept = cellFiles(g).length;
    // the worker goes on with the cells already queued
    const cellsDone = (): number =>
      w
        .log()
        .split('\n')
        .filter((l) => /^job cell .*: done in/.test(l)).length;
    await waitFor(() => cellsDone() >= CELLS, 'the worker to finish the queued cells');
    const second = await runCliAsync([...GRID, '--queue', redis.url, '-o', g, '--json']);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(JSON.parse(second.stdout).ran, CELLS - kept, 'the rest were collected from the queue');
    assertEqualsLocal(g);
    assert.equal(cellsDone(), CELLS, 'no cell ran twice');
  } finally {
    await stopWorker(w);
  }
});
