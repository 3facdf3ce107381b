/**
 * The queue's throughput and overhead: one least-squares stitching grid run locally (one
 * process, 1 ONNX Runtime thread), then through a Redis queue with 1 worker process and
 * with 2 worker processes (1 thread each), with its own redis-server on a free loopback
 * port. Reports cells per hour for each, the overhead per job
 * ((queue with 1 worker - local) / cells, as a share of a local least-squares cell), and
 * the round trip of a trivial job (what the queue itself costs per job). The grids are
 * checked to give the same matrices.
 *
 * `node dist/bench/queue.js [--quick] [--json] [--train N] [--test N] [--width W]`
 * Default: ResNet(1,1,1,1) width 0.5 pairs on Fashion-MNIST (the full set if installed,
 * else the shipped sample; the output says which), senders stem, layer1.0, layer2.0,
 * layer3.0 x receivers layer1.0, layer2.0, layer3.0, features (16 cells), 4096 training
 * and 2000 test images. --quick: width 0.25, 2x2 cells, 512/256 images.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createZooModel } from '../src/nn/zoo.js';
import { saveModel } from '../src/onnx/proto.js';
import { setInputSpec, setLabels } from '../src/onnx/metadata.js';
import { defaultNormalization } from '../src/data/known.js';
import { openDataset } from '../src/data/resolve.js';
import { stitchGrid } from '../src/stitch/run.js';
import { stitchDispatch } from '../src/queue/stitch.js';
import { clearQueue } from '../src/queue/admin.js';
import { Coordinator } from '../src/queue/coordinator.js';
import { connectRedis, parseQueueUrl } from '../src/queue/connection.js';
import { setQuiet } from '../src/util/progress.js';
import { machine } from './common.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const quick = args.includes('--quick');
const json = args.includes('--json');
const trainN = opt('--train', quick ? 512 : 4096);
const testN = opt('--test', quick ? 256 : 2000);
const width = opt('--width', quick ? 0.25 : 0.5);
const log = (s: string): void => {
  if (!json) console.log(s);
};
setQuiet(true);

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'bench-queue-'));
const children: ChildProcess[] = [];
const cleanup = (): void => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
};
process.on('exit', cleanup);

const data = (await openDataset('fashion-mnist', 'test', { announce: false })).source.includes('sample') ? 'fashion-mnist-sample' : 'fashion-mnist';
const files = [1, 2].map((seed) => {
  const m = createZooModel('resnet', { blocks: [1, 1, 1, 1], width, input: [1, 28, 28], classes: 10, seed });
  const n = defaultNormalization('fashion-mnist', 1);
  setInputSpec(m, { shape: [1, 28, 28], mean: n.mean, std: n.std });
  setLabels(
    m,
    Array.from({ length: 10 }, (_, c) => ({ dataset: 'fashion-mnist', class: c })),
  );
  const f = join(dir, `r${seed}.onnx`);
  saveModel(m, f);
  return f;
});
const senders = quick ? ['stem', 'layer2.0'] : ['stem', 'layer1.0', 'layer2.0', 'layer3.0'];
const receivers = quick ? ['layer2.0', 'features'] : ['layer1.0', 'layer2.0', 'layer3.0', 'features'];
const cells = senders.length * receivers.length;
const spec = {
  a: files[0]!,
  b: files[1]!,
  data,
  senders,
  receivers,
  options: { mode: 'lsq' as const, batchSize: 256 },
  trainLimit: trainN,
  testLimit: testN,
};

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A redis-server of its own on a free port, once it answers. The server answering must be
 * this one (its process id): a process that took the port after freePort() found it free
 * would answer too, and the benchmark empties the queue it uses (clearQueue --force).
 */
async function startRedis(): Promise<{ proc: ChildProcess; url: string }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    children.push(proc);
    const url = `redis://127.0.0.1:${port}`;
    for (let i = 0; i < 100 && proc.exitCode === null; i++) {
      const c = connectRedis(parseQueueUrl(url), { maxRetriesPerRequest: 1 });
      const info = await c.info('server').catch(() => '');
      c.disconnect();
      if (new RegExp(`^process_id:${proc.pid}\\s*$`, 'm').test(info)) return { proc, url };
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill('SIGKILL');
    if (attempt >= 3) throw new Error(`redis-server did not start (last port ${port})`);
  }
}
const { url } = await startRedis();

function startWorkers(n: number): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from(
      { length: n },
      (_, k) =>
        new Promise<ChildProcess>((resolve) => {
          const w = spawn(process.execPath, [MAIN, 'worker', '--queue', url, '--threads', '1', '--name', `bench${k}`, '--work', join(dir, `work${n}-${k}`)], {
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          children.push(w);
          w.stderr!.on('data', (d: Buffer) => {
            if (/worker bench\d+: queue/.test(d.toString())) resolve(w);
          });
        }),
    ),
  );
}

async function stopWorkers(ws: ChildProcess[]): Promise<void> {
  await Promise.all(
    ws.map(
      (w) =>
        new Promise<void>((resolve) => {
          w.on('exit', () => resolve());
          w.kill('SIGTERM');
        }),
    ),
  );
}

async function timed(out: string, queue: boolean): Promise<{ seconds: number; matrix: unknown }> {
  const t0 = performance.now();
  const r = await stitchGrid({ ...spec, out, threads: 1, session: { threads: 1 }, ...(queue ? { dispatch: stitchDispatch(url) } : {}) });
  return { seconds: (performance.now() - t0) / 1000, matrix: r.matrix.matrices };
}

log(
  `machine: ${machine()}; data: ${data}, ${trainN} training and ${testN} test images; ResNet(1,1,1,1) width ${width}; ${cells} least-squares cells; 1 ONNX Runtime thread per process`,
);
const local = await timed(join(dir, 'local'), false);
const cellSeconds = local.seconds / cells;
log(`local, one process: ${local.seconds.toFixed(1)} s, ${cellSeconds.toFixed(2)} s per cell, ${(3600 / cellSeconds).toFixed(0)} cells per hour`);

const runs: Record<string, { seconds: number; cellsPerHour: number }> = {};
for (const n of [1, 2]) {
  await clearQueue(url, true);
  const ws = await startWorkers(n);
  const r = await timed(join(dir, `queue${n}`), true);
  await stopWorkers(ws);
  if (JSON.stringify(r.matrix) !== JSON.stringify(local.matrix)) throw new Error(`the grid through the queue with ${n} worker(s) differs from the local one`);
  runs[`${n}`] = { seconds: r.seconds, cellsPerHour: (3600 * cells) / r.seconds };
  log(`queue, ${n} worker${n > 1 ? 's' : ''}: ${r.seconds.toFixed(1)} s, ${((3600 * cells) / r.seconds).toFixed(0)} cells per hour (same matrices as local)`);
}
const overhead = (runs['1']!.seconds - local.seconds) / cells;
log(
  `overhead per job (queue with 1 worker - local, per cell): ${(overhead * 1000).toFixed(0)} ms = ${((100 * overhead) / cellSeconds).toFixed(1)}% of a least-squares cell`,
);
log(`speed-up with 2 workers over 1: ${(runs['1']!.seconds / runs['2']!.seconds).toFixed(2)}x`);

// the queue alone: round trips of a trivial job (a cached dataset lookup) with one idle worker
await clearQueue(url, true);
const [w] = await startWorkers(1);
const c = await Coordinator.open(url, 'bench-roundtrip', 'bench', { checkSeconds: 5 });
await c.data(data);
const trips: number[] = [];
for (let i = 0; i < 20; i++) {
  const t0 = performance.now();
  await c.data(data);
  trips.push(performance.now() - t0);
}
await c.close();
await stopWorkers([w!]);
trips.sort((x, y) => x - y);
const trip = trips[Math.floor(trips.length / 2)]!;
log(`round trip of a trivial job: median ${trip.toFixed(1)} ms (${((100 * trip) / 1000 / cellSeconds).toFixed(2)}% of a least-squares cell)`);
if (json) {
  console.log(
    JSON.stringify(
      {
        machine: machine(),
        data,
        trainImages: trainN,
        testImages: testN,
        width,
        cells,
        local: { seconds: local.seconds, secondsPerCell: cellSeconds, cellsPerHour: 3600 / cellSeconds },
        queue: runs,
        overheadSecondsPerJob: overhead,
        overheadShareOfCell: overhead / cellSeconds,
        roundTripMs: trip,
        matricesEqual: true,
      },
      null,
      2,
    ),
  );
}
cleanup();
process.exit(0);
