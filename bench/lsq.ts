/**
 * Least-squares stitch cost at a given size: seconds and peak memory to accumulate random
 * rows (LsqAccumulator) and to solve them (solveLsq), in whichever form (primal or dual)
 * the row count picks. The default shape is the full-size MobileNetV2 stem into a 2x2
 * receiver: 32x32x32 -> 160x2x2, a stride-16 stitch of K = 8192 inputs, 4 rows per image.
 * Speed does not depend on the values, so the rows are seeded noise.
 *
 * `node dist/bench/lsq.js [--images N] [--from CxHxW] [--to CxHxW] [--batch B] [--threads T] [--json]`
 * Default: 2100 images (8400 rows: the primal form at K = 8192); 200 images give the dual.
 * Peak memory is the process's maximum resident set size (it includes Node and ORT). CPU
 * seconds (user + system, all threads) are printed next to wall seconds: on a shared
 * machine wall time mostly measures the neighbours.
 */
import { planStitch } from '../src/stitch/plan.js';
import { mapFanIn } from '../src/stitch/build.js';
import { LsqAccumulator, solveLsq } from '../src/stitch/lsq.js';
import { numel } from '../src/onnx/tensor.js';
import { Rng } from '../src/util/random.js';
import { machine } from './common.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: string): string => (args.includes(name) ? args[args.indexOf(name) + 1]! : fallback);
const dims = (s: string): number[] => s.split('x').map(Number);
const images = Number(opt('--images', '2100'));
const batch = Number(opt('--batch', '256'));
const threads = Number(opt('--threads', '2'));
const from = dims(opt('--from', '32x32x32')),
  to = dims(opt('--to', '160x2x2'));
const json = args.includes('--json');

const spec = planStitch(from, to);
const session = { threads };
const rng = new Rng(1);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const acc = await LsqAccumulator.create(spec, session);
for (let done = 0; done < images; done += batch) {
  const n = Math.min(batch, images - done);
  const x = Float32Array.from({ length: n * numel(from) }, () => rng.normal());
  const y = Float32Array.from({ length: n * numel(to) }, () => rng.normal());
  await acc.add(x, y, n);
}
await acc.release();
const t1 = performance.now();
const cpu1 = process.cpuUsage(cpu0);
const sol = await solveLsq(spec, acc.moments, session);
const t2 = performance.now();
const cpu = process.cpuUsage(cpu0);
const mo = acc.moments[0] as { rows: number; form?: string };
const result = {
  machine: machine(),
  threads,
  stitch: `${spec.kind} ${from.join('x')} -> ${to.join('x')}`,
  k: mapFanIn(spec),
  rows: mo.rows,
  form: mo.form ?? 'primal',
  accumulateSeconds: (t1 - t0) / 1000,
  solveSeconds: (t2 - t1) / 1000,
  accumulateCpuSeconds: (cpu1.user + cpu1.system) / 1e6,
  solveCpuSeconds: (cpu.user + cpu.system - cpu1.user - cpu1.system) / 1e6,
  maxRssMb: process.resourceUsage().maxRSS / 1024,
  fitError: sol.fitError,
  ridge: sol.ridge,
};
if (json) console.log(JSON.stringify(result));
else
  console.log(
    `${result.stitch}: K = ${result.k}, ${result.rows} rows (${result.form}) on ${result.machine}, ${threads} threads\n` +
      `accumulate ${result.accumulateSeconds.toFixed(1)} s (CPU ${result.accumulateCpuSeconds.toFixed(1)} s), ` +
      `solve ${result.solveSeconds.toFixed(1)} s (CPU ${result.solveCpuSeconds.toFixed(1)} s), ` +
      `max RSS ${result.maxRssMb.toFixed(0)} MB; fit error ${result.fitError.toExponential(2)}, ridge ${result.ridge.toExponential(1)}`,
  );
