/**
 * Training throughput: one SGD step (forward, backward, optimiser update) per batch
 * through the training graph, for the models of issue 3, next to the machine's MatMul
 * peak. `node dist/bench/training.js [--quick] [--json] [--threads N] [--only <name part>]`.
 * GFLOP/s counts 3x the forward FLOPs per image (forward + input and weight gradients).
 *
 * `--profile [--steps N]`: instead of timing, runs N steps (default 20, --quick 8) after
 * two warm-up steps under ONNX Runtime's profiler and prints where a step's time goes
 * (bench/profile.ts): layout reorders, forward and gradient convolutions, BatchNorm,
 * the runtime's own overhead, copies between JavaScript and the runtime, the optimiser.
 */
import { createZooModel } from '../src/nn/zoo.js';
import { modelStats } from '../src/onnx/stats.js';
import { trainableParameters } from '../src/onnx/parameters.js';
import { TrainingSession } from '../src/autodiff/trainer.js';
import { createOptimizer } from '../src/autodiff/optim.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machine, matmulPeak, randomInput, time } from './common.js';
import { formatProfile, summariseProfile } from './profile.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const json = args.includes('--json');
const threads = Number(args[args.indexOf('--threads') + 1] ?? 2) || 2;
const seconds = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : quick ? 2 : 10;
const BATCH = 128;

const CASES = [
  { name: 'VGG-11 (width 1, 3x32x32)', arch: 'vgg11', opts: { input: [3, 32, 32] as [number, number, number] } },
  { name: 'ResNet-18 (3x32x32)', arch: 'resnet18', opts: { input: [3, 32, 32] as [number, number, number] } },
  { name: 'ResNet(1,1,1,1) width 0.25 (1x28x28)', arch: 'resnet', opts: { input: [1, 28, 28] as [number, number, number], blocks: [1, 1, 1, 1], width: 0.25 } },
];

const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const profile = args.includes('--profile');
const profileSteps = args.includes('--steps') ? Number(args[args.indexOf('--steps') + 1]) : quick ? 8 : 20;
const profileDir = profile ? mkdtempSync(join(tmpdir(), 'modelsmith-profile-')) : '';
const log = (s: string): void => {
  if (!json) console.log(s);
};
const results: Record<string, unknown>[] = [];
const peak = profile ? NaN : await matmulPeak(threads, quick ? 1 : 3);
log(`machine: ${machine()}, ONNX Runtime intra-op threads: ${threads}`);
// a profile run does not measure the peak
if (!profile) log(`reference: MatMul 2048x2048 peak ${peak.toFixed(1)} GFLOP/s`);
for (const c of CASES.filter((k) => !only || k.name.includes(only))) {
  const model = createZooModel(c.arch, { classes: 10, seed: 0, ...c.opts });
  const flops = modelStats(model).flopsPerImage;
  const buildStart = performance.now();
  const session = await TrainingSession.create(model, {
    trainable: trainableParameters(model.graph),
    loss: 'cross-entropy',
    batchSize: BATCH,
    batchNorm: 'train',
    session: { threads, ...(profile ? { profile: join(profileDir, 'step') } : {}) },
  });
  const buildSeconds = (performance.now() - buildStart) / 1000;
  const optimizer = createOptimizer({ kind: 'sgd', momentum: 0.9, weightDecay: 5e-4 });
  const [ch, h, w] = c.opts.input;
  const x = randomInput(BATCH * ch * h * w);
  const target = BigInt64Array.from({ length: BATCH }, (_, i) => BigInt(i % 10));
  if (profile) {
    const warmup = 2;
    let stepMs = 0,
      runMs = 0,
      optimizerMs = 0;
    for (let i = 0; i < warmup + profileSteps; i++) {
      const t0 = performance.now();
      const r = await session.step(x, target);
      const t1 = performance.now();
      optimizer.step(session.params, r.grads, 0.01);
      const t2 = performance.now();
      if (i < warmup) continue;
      runMs += t1 - t0;
      optimizerMs += t2 - t1;
      stepMs += t2 - t0;
    }
    const forwardOps = new Map(model.graph.nodes.map((nd) => [nd.name, nd.opType]));
    const summary = summariseProfile(session.endProfiling(), warmup, forwardOps);
    await session.release();
    const n = profileSteps;
    const js = { stepMs: stepMs / n, runMs: runMs / n, optimizerMs: optimizerMs / n };
    results.push({ model: c.name, batch: BATCH, profile: summary, js });
    log(`profile ${c.name} batch ${BATCH}, ${n} steps:`);
    for (const line of formatProfile(summary, js)) log(line);
    continue;
  }
  const t = await time(
    async () => {
      const r = await session.step(x, target);
      optimizer.step(session.params, r.grads, 0.01);
    },
    seconds,
    1,
  );
  await session.release();
  const ips = BATCH / t.median;
  const gflops = (3 * flops * ips) / 1e9;
  results.push({
    model: c.name,
    batch: BATCH,
    imagesPerSecond: ips,
    gflops,
    fractionOfPeak: gflops / peak,
    flopsPerImage: flops,
    graphBuildSeconds: buildSeconds,
    cpuSecondsPerStep: t.cpu,
  });
  log(
    `training ${c.name} batch ${BATCH}: ${ips.toFixed(1)} images/s, ${gflops.toFixed(1)} GFLOP/s (${((100 * gflops) / peak).toFixed(0)}% of MatMul peak; session set-up ${buildSeconds.toFixed(1)} s; CPU ${(1000 * t.cpu).toFixed(0)} ms per step)`,
  );
}
if (profile) rmSync(profileDir, { recursive: true, force: true });
if (json) console.log(JSON.stringify({ machine: machine(), threads, matmulPeakGflops: peak, results }, null, 2));
