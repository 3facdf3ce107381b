/**
 * Inference throughput of zoo models through ONNX Runtime, as a fraction of the
 * machine's MatMul peak. `npm run bench` (add `-- --quick` for a short check,
 * `-- --json` for machine-readable output, `-- --threads N`, `-- --only <name part>`).
 */
import { createZooModel } from '../src/nn/zoo.js';
import { modelStats } from '../src/onnx/stats.js';
import { ModelSession } from '../src/runtime/session.js';
import { machine, matmulPeak, randomInput, time } from './common.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const json = args.includes('--json');
const threads = Number(args[args.indexOf('--threads') + 1] ?? 2) || 2;
const seconds = quick ? 1 : 5;

const CASES = [
  { name: 'VGG-11 (width 1, 3x32x32)', arch: 'vgg11', opts: {} },
  { name: 'ResNet-18 (3x32x32)', arch: 'resnet18', opts: {} },
];
const BATCHES = [64, 256];
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;

const results: Record<string, unknown>[] = [];
const log = (s: string): void => {
  if (!json) console.log(s);
};

const peak = await matmulPeak(threads, seconds);
log(`machine: ${machine()}, ONNX Runtime intra-op threads: ${threads}`);
log(`reference: MatMul 2048x2048 peak ${peak.toFixed(1)} GFLOP/s`);
for (const c of CASES.filter((k) => !only || k.name.includes(only))) {
  const model = createZooModel(c.arch, { input: [3, 32, 32], classes: 10, width: 1, seed: 0, ...c.opts });
  const flops = modelStats(model).flopsPerImage;
  const session = await ModelSession.create(model, { threads });
  for (const b of BATCHES) {
    const x = { dims: [b, 3, 32, 32], data: randomInput(b * 3 * 32 * 32) };
    const t = await time(() => session.run({ input: x }), seconds);
    const ips = b / t.median;
    const gflops = (ips * flops) / 1e9;
    results.push({ model: c.name, batch: b, imagesPerSecond: ips, gflops, fractionOfPeak: gflops / peak, flopsPerImage: flops });
    log(
      `inference ${c.name} batch ${b}: ${ips.toFixed(0)} images/s, ${gflops.toFixed(1)} GFLOP/s (${((100 * gflops) / peak).toFixed(0)}% of MatMul peak; ${(flops / 1e6).toFixed(1)} MFLOPs/image)`,
    );
  }
  await session.release();
}
if (json) console.log(JSON.stringify({ machine: machine(), threads, matmulPeakGflops: peak, results }, null, 2));
