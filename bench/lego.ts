/**
 * Time and peak memory of Model LEGO disassembly on VGG-16 and ResNet-50 (3x32x32, 10
 * classes, untrained zoo models, synthetic CIFAR-shaped data) at 10, 50 and 200
 * representative samples per class (`--samples` to choose). Each setting runs in its
 * own child process so that its peak RSS is its own; memory must not grow with the
 * number of samples.
 * `node dist/bench/lego.js` (add `--quick` for ResNet-50 at width 0.25 only, `--width 0.25` for
 * narrower models on slow machines, `--threads N`, `--json`).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createZooModel } from '../src/nn/zoo.js';
import { modelStats } from '../src/onnx/stats.js';
import { disassemble } from '../src/lego/disassemble.js';
import type { Dataset } from '../src/data/types.js';
import { Rng, hashSeed } from '../src/util/random.js';
import { setQuiet } from '../src/util/progress.js';
import { machine, matmulPeak } from './common.js';

const CLASSES = 10;
const PER_CLASS = 200;
/** small enough that the 10-per-class run (50 samples) fills its batches too: memory is compared at equal batch size */
const BATCH = 32;

/** CIFAR-shaped images of seeded noise, label i mod 10; nothing is held in memory. */
class SyntheticCifar implements Dataset {
  readonly name = 'synthetic-cifar';
  readonly split = 'train';
  readonly source = `synthetic CIFAR-shaped noise (${CLASSES * PER_CLASS} images)`;
  readonly shape = [3, 32, 32] as const;
  readonly classes = CLASSES;
  readonly size = CLASSES * PER_CLASS;
  label(i: number): number {
    return i % CLASSES;
  }
  async read(indices: readonly number[], out: Float32Array): Promise<void> {
    const n = 3 * 32 * 32;
    indices.forEach((i, k) => {
      const rng = new Rng(hashSeed(1, `image:${i}`));
      for (let j = 0; j < n; j++) out[k * n + j] = rng.next();
    });
  }
}

const args = process.argv.slice(2);

if (args[0] === '--child') {
  const [, arch, width, spc, threads] = args;
  setQuiet(true);
  const model = createZooModel(arch!, { input: [3, 32, 32], classes: CLASSES, width: Number(width), seed: 0 });
  const t0 = performance.now();
  const c = await disassemble(model, new SyntheticCifar(), {
    task: [0, 1, 2, 3, 4],
    samplesPerClass: Number(spc),
    batchSize: BATCH,
    session: { threads: Number(threads) },
    label: '',
  });
  const seconds = (performance.now() - t0) / 1000;
  process.stdout.write(
    JSON.stringify({
      arch,
      width: Number(width),
      samplesPerClass: Number(spc),
      seconds,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      parameters: modelStats(model).parameters,
      componentParameters: modelStats(c.model).parameters,
    }) + '\n',
  );
  process.exit(0);
}

const quick = args.includes('--quick');
const json = args.includes('--json');
const threads = Number(args[args.indexOf('--threads') + 1] ?? 2) || 2;
const widthArg = args.indexOf('--width');
const width = widthArg >= 0 ? Number(args[widthArg + 1]) : 1;
if (!(width > 0)) throw new Error(`--width expects a positive number, got ${args[widthArg + 1]}`);
const suffix = width === 1 ? '' : ` w${width}`;
const samplesArg = args.indexOf('--samples');
const SAMPLES = samplesArg >= 0 ? args[samplesArg + 1]!.split(',').map(Number) : [10, 50, 200];
if (!SAMPLES.every((n) => Number.isInteger(n) && n > 0 && n <= PER_CLASS))
  throw new Error(`--samples expects comma-separated integers in 1..${PER_CLASS}, got ${args[samplesArg + 1]}`);
const CASES = quick
  ? [{ name: 'ResNet-50 w0.25', arch: 'resnet50', width: 0.25 }]
  : [
      { name: `VGG-16${suffix}`, arch: 'vgg16', width },
      { name: `ResNet-50${suffix}`, arch: 'resnet50', width },
    ];
const log = (s: string): void => {
  if (!json) console.log(s);
};
const peak = await matmulPeak(threads, quick ? 1 : 3);
log(`machine: ${machine()}, ONNX Runtime intra-op threads: ${threads}; reference: MatMul 2048x2048 peak ${peak.toFixed(1)} GFLOP/s`);
log(
  `disassembly of task 0-4 from an untrained model, 3x32x32, 10 classes, ${CLASSES * PER_CLASS} synthetic training images, batch ${BATCH}; one child process per row`,
);
const self = fileURLToPath(import.meta.url);
const rows: Record<string, unknown>[] = [];
for (const c of CASES) {
  for (const spc of SAMPLES) {
    const r = spawnSync(process.execPath, [self, '--child', c.arch, String(c.width), String(spc), String(threads)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (r.status !== 0) {
      console.error(`${c.name} at ${spc} samples/class failed:\n${r.stderr}`);
      process.exit(1);
    }
    const row = JSON.parse(r.stdout.trim().split('\n').pop()!) as { seconds: number; peakRssMiB: number; parameters: number; componentParameters: number };
    rows.push({ model: c.name, ...row });
    log(
      `${c.name}: ${spc} samples/class: ${row.seconds.toFixed(1)} s, peak RSS ${row.peakRssMiB.toFixed(0)} MiB (component ${row.componentParameters.toLocaleString('en-US')} of ${row.parameters.toLocaleString('en-US')} parameters)`,
    );
  }
}
if (json) console.log(JSON.stringify({ machine: machine(), threads, matmulPeakGflops: peak, rows }, null, 2));
