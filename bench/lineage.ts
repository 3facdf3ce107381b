/**
 * Lineage distance benchmark (issue 4): 105 synthetic models (5 trees x 21) of 12 square
 * 768x768 float32 layers (2.97 GB of weights) written as safetensors to a temp folder;
 * times the blocked distance computation (measureModels, ft mode: float64 Gram of the
 * differences to the first model, layers read in column panels of about 32 MB across the
 * models, worker threads taking rows and Gram blocks as each panel is read), its wall and CPU time and peak RSS (in a child process, so generating
 * the files does not count), then the same with the default clustering distance (mean
 * |dW| over all 2-D layers, abs-diff.ts, on top of the Gram), a direct per-pair loop that
 * reloads both models per pair as the reference does (timed on a sample of pairs and
 * extrapolated to all 5,460), and the disk's sequential read speed (dd with O_DIRECT, so
 * the page cache does not answer).
 *
 *   node dist/bench/lineage.js [--dir /tmp/x] [--keep] [--pairs 40]
 *   node dist/bench/lineage.js --measure <dir> [--cluster-distance reference|selected]
 *       (the timed part alone, as JSON, on an existing zoo; default selected: the Gram alone)
 *   node dist/bench/lineage.js --phases <dir>   (CPU time per step, one thread)
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors } from '../src/io/safetensors.js';
import { float32 } from '../src/onnx/tensor.js';
import { closeSources, openSources } from '../src/lineage/sources.js';
import { CLUSTER_DISTANCES, layerPanels, measureModels, type ClusterDistance } from '../src/lineage/measure.js';
import { MOMENT_FIELDS, accumulateMoments } from '../src/lineage/kurtosis.js';
import { GramEngine, addBlock, distancesFromGram } from '../src/lineage/gram.js';
import { absDiffSums } from '../src/lineage/abs-diff.js';
import { openSafetensors } from '../src/io/safetensors.js';
import { Rng } from '../src/util/random.js';
import { setQuiet } from '../src/util/progress.js';
import { machine } from './common.js';

const TREES = 5,
  CHILDREN = 4,
  LAYERS = 12,
  SIDE = 768;
const P = SIDE * SIDE;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** Cheap uniform noise in [-a, a): the benchmark times I/O and arithmetic, not the generator. */
function noisy(base: Float32Array | undefined, a: number, rng: Rng): Float32Array {
  const out = base ? Float32Array.from(base) : new Float32Array(P);
  const scale = (2 * a) / 4294967296;
  for (let i = 0; i < P; i++) out[i]! += rng.nextU32() * scale - a;
  return out;
}

function writeZoo(dir: string): number {
  let k = 0;
  const save = (weights: Float32Array[]): void => {
    writeSafetensors(
      join(dir, `m${String(k++).padStart(3, '0')}.safetensors`),
      weights.map((w, l) => [`layer${l}.attn.weight`, float32([SIDE, SIDE], w)] as const),
    );
  };
  const rng = new Rng(1);
  for (let t = 0; t < TREES; t++) {
    const root = Array.from({ length: LAYERS }, () => noisy(undefined, 0.05, rng));
    save(root);
    for (let c = 0; c < CHILDREN; c++) {
      const child = root.map((w) => noisy(w, 0.002, rng));
      save(child);
      for (let g = 0; g < CHILDREN; g++) save(child.map((w) => noisy(w, 0.002, rng)));
    }
  }
  return k;
}

/** Child mode: the blocked computation alone, so its peak RSS is its own. */
async function measureChild(dir: string, clusterDistance: ClusterDistance): Promise<void> {
  setQuiet(true);
  const models = openSources([dir]);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const m = await measureModels(models, { mode: 'ft', clusterDistance });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  closeSources(models);
  process.stdout.write(
    JSON.stringify({
      seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      bytes: m.stats.bytesRead,
      repaired: m.stats.repairedPairs,
      bytesReread: m.stats.bytesReread,
      layers: m.stats.layersRead,
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
    }) + '\n',
  );
}

/**
 * Where the CPU time goes: the steps of measureModels on one thread (ORT single-threaded),
 * each timed with process.cpuUsage over all layers read in column panels as measureModels
 * reads them, and the plain per-pair |dW| loop on the first panel for comparison with the
 * SIMD tiles.
 */
async function phases(dir: string): Promise<void> {
  setQuiet(true);
  const models = openSources([dir]);
  const n = models.length;
  const layers = models[0]!.layers().filter((l) => l.shape.length === 2);
  const plan = layers.map((l) => ({ name: l.name, p: l.shape[0]! * l.shape[1]!, panels: layerPanels(l.shape[0]! * l.shape[1]!, n, false) }));
  const widest = Math.max(...plan.flatMap((l) => l.panels.map((q) => q.width)));
  const buffer = new Float32Array(n * widest);
  const engine = await GramEngine.create({ threads: 1 });
  const cpu = (): number => {
    const c = process.cpuUsage();
    return (c.user + c.system) / 1e6;
  };
  const seconds: Record<string, number> = {};
  const timed = async <T>(phase: string, f: () => T | Promise<T>): Promise<T> => {
    const t = cpu();
    const r = await f();
    seconds[phase] = (seconds[phase] ?? 0) + cpu() - t;
    return r;
  };
  let plainLoop = 0;
  const p0 = plan[0]!.panels[0]!.width;
  for (const [l, { name, p, panels }] of plan.entries()) {
    const moments = new Float64Array(n * MOMENT_FIELDS);
    const gram = new Float64Array(n * n);
    for (const [k, { offset, width: w }] of panels.entries()) {
      const stack = buffer.subarray(0, n * w);
      await timed('read (page-cache copies, column panels)', () =>
        models.forEach((m, i) => m.readSliceInto!(name, offset, stack.subarray(i * w, (i + 1) * w))),
      );
      await timed('weight moments', () => {
        for (let i = 0; i < n; i++) accumulateMoments(moments, i * MOMENT_FIELDS, stack.subarray(i * w, (i + 1) * w));
      });
      addBlock(gram, await timed('Gram blocks (SIMD differences, ORT float64 Gemm, block sums)', () => engine.gram(stack, n, w)));
      await timed('mean |dW| (SIMD tiles)', () => absDiffSums(stack, n, w));
      if (l === 0 && k === 0) {
        const t = cpu();
        for (let i = 0; i < n; i++)
          for (let j = i + 1; j < n; j++) {
            let sum = 0;
            const a = i * w,
              b = j * w;
            for (let q = 0; q < w; q++) sum += Math.abs(stack[a + q]! - stack[b + q]!);
            if (!(sum >= 0)) throw new Error('non-finite weights');
          }
        plainLoop = cpu() - t;
      }
    }
    await timed('distances from the Gram', () =>
      distancesFromGram(gram, n, p, () => {
        throw new Error('--phases: a pair of this zoo needs the direct repair, which this profile does not time (use --measure)');
      }),
    );
  }
  await engine.release();
  closeSources(models);
  const allWeights = plan.reduce((sum, l) => sum + l.p, 0);
  console.log(`CPU seconds per step, one thread, ${n} models x ${layers.length} layers:`);
  for (const [phase, s] of Object.entries(seconds)) console.log(`  ${phase}: ${s.toFixed(2)} s`);
  const perPair = (s: number, weights: number): string => `${((s / ((n * (n - 1)) / 2) / weights) * 1e9).toFixed(2)} ns per weight pair`;
  console.log(
    `  plain per-pair |dW| loop, first panel only: ${plainLoop.toFixed(2)} s (${perPair(plainLoop, p0)}; the tiles: ${perPair(seconds['mean |dW| (SIMD tiles)']!, allWeights)})`,
  );
}

/** The reference's way: for each pair, load both models' layers and difference them. */
function directPairs(dir: string, files: string[], pairs: number): { seconds: number; perPair: number } {
  const rng = new Rng(2);
  const t0 = performance.now();
  for (let k = 0; k < pairs; k++) {
    const i = rng.int(files.length);
    let j = rng.int(files.length - 1);
    if (j >= i) j++;
    const a = openSafetensors(join(dir, files[i]!)),
      b = openSafetensors(join(dir, files[j]!));
    let d = 0;
    for (const t of a.tensors) {
      const x = a.readFloat32(t.name),
        y = b.readFloat32(t.name);
      let s = 0;
      for (let q = 0; q < x.length; q++) {
        const e = x[q]! - y[q]!;
        s += e * e;
      }
      d += Math.sqrt(s / x.length) / a.tensors.length;
    }
    if (!(d > 0)) throw new Error('distance should be positive');
    a.close();
    b.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, perPair: seconds / pairs };
}

/** Sequential read speed of the disk under `dir`, bypassing the page cache. */
function diskRead(file: string): string {
  const r = spawnSync('dd', [`if=${file}`, 'of=/dev/null', 'bs=16M', 'iflag=direct'], { encoding: 'utf8' });
  const line = r.stderr.trim().split('\n').pop() ?? '';
  return r.status === 0 ? line : `dd failed: ${r.stderr.trim()}`;
}

interface ChildResult {
  seconds: number;
  cpuSeconds: number;
  bytes: number;
  repaired: number;
  maxRssBytes: number;
}

/** The timed part in a child process of its own. */
function runChild(dir: string, clusterDistance: ClusterDistance): ChildResult {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [self, '--measure', dir, '--cluster-distance', clusterDistance], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`measure child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ChildResult;
}

const USAGE = `node dist/bench/lineage.js [--dir /tmp/x] [--keep] [--pairs 40]
node dist/bench/lineage.js --phases <dir>   (CPU time per step on one thread, on a zoo kept with --keep)
node dist/bench/lineage.js --measure <dir> [--cluster-distance reference|selected]   (the timed part alone, as JSON, on a zoo kept with --keep)`;

async function main(): Promise<void> {
  if (process.argv.includes('--help')) return void console.log(USAGE);
  const child = arg('--measure');
  const clusterDistance = (arg('--cluster-distance') ?? 'selected') as ClusterDistance;
  if (!CLUSTER_DISTANCES.includes(clusterDistance)) throw new Error(`--cluster-distance must be one of ${CLUSTER_DISTANCES.join(', ')}`);
  if (child) return measureChild(child, clusterDistance);
  const phaseDir = arg('--phases');
  if (phaseDir) return phases(phaseDir);
  const keep = process.argv.includes('--keep');
  const dir = arg('--dir') ?? mkdtempSync(join(tmpdir(), 'lineage-bench-'));
  mkdirSync(dir, { recursive: true });
  const pairs = Number(arg('--pairs') ?? 40);
  console.log(`machine: ${machine()}`);
  const t0 = performance.now();
  const n = writeZoo(dir);
  const files = Array.from({ length: n }, (_, k) => `m${String(k).padStart(3, '0')}.safetensors`);
  const bytes = n * LAYERS * P * 4;
  console.log(
    `wrote ${n} models x ${LAYERS} layers ${SIDE}x${SIDE} F32 (${(bytes / 1e9).toFixed(2)} GB) in ${((performance.now() - t0) / 1000).toFixed(1)} s to ${dir}`,
  );

  const res = runChild(dir, 'selected');
  const allPairs = (n * (n - 1)) / 2;
  console.log(
    `blocked (float64 Gram of the differences to the first model via ONNX Runtime, worker threads, layer by layer): ${res.seconds.toFixed(1)} s for ${allPairs} pairs, ${(res.bytes / res.seconds / 1e6).toFixed(0)} MB of weights/s, ${res.repaired} pairs repaired directly`,
  );
  // on a shared machine the wall time depends on the neighbours; the CPU time much less so
  console.log(`  CPU time (all threads): ${res.cpuSeconds.toFixed(1)} s, ${(res.bytes / res.cpuSeconds / 1e6).toFixed(0)} MB of weights per CPU second`);
  console.log(`peak RSS of the blocked computation: ${(res.maxRssBytes / 1e6).toFixed(0)} MB (limit 1500 MB): ${res.maxRssBytes < 1.5e9 ? 'OK' : 'OVER'}`);
  const full = runChild(dir, 'reference');
  console.log(
    `default ft run (Gram plus the reference's clustering distance, mean |dW| over all 2-D layers): ${full.seconds.toFixed(1)} s, ${full.cpuSeconds.toFixed(1)} CPU s, ${(full.bytes / full.seconds / 1e6).toFixed(0)} MB of weights/s, peak RSS ${(full.maxRssBytes / 1e6).toFixed(0)} MB`,
  );

  const direct = directPairs(dir, files, pairs);
  const extrapolated = direct.perPair * allPairs;
  console.log(
    `direct per-pair loop (reload both models per pair, as the reference): ${(direct.perPair * 1000).toFixed(0)} ms per pair over ${pairs} sampled pairs -> ${extrapolated.toFixed(0)} s for all ${allPairs} pairs (extrapolated), ${(extrapolated / res.seconds).toFixed(1)}x the blocked time`,
  );

  const size = statSync(join(dir, files[0]!)).size;
  console.log(`disk sequential read (dd bs=16M iflag=direct, one ${(size / 1e6).toFixed(0)} MB model file): ${diskRead(join(dir, files[n - 1]!))}`);
  console.log('(the blocked run reads through the page cache, which holds the freshly written files; the dd figure is the cold-disk bound)');
  if (!keep && !arg('--dir')) rmSync(dir, { recursive: true, force: true });
}

await main();
