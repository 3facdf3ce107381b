/**
 * Stitching throughput: seconds per grid cell and cells per hour for ResNet(1,1,1,1)
 * width 0.5 pairs on Fashion-MNIST (the full set if installed, else the shipped sample;
 * the output says which), with sender activations cached in memory and recomputed for
 * every batch. Speed does not depend on the weights, so the two networks are fresh zoo
 * models (seeds 1 and 2).
 *
 * `node dist/bench/stitch.js [--quick] [--json] [--threads N] [--train N] [--test N] [--epochs E]
 *    [--senders a,b] [--receivers a,b] [--cached-only] [--no-peak]`
 * Default: 3 senders (stem, layer2.0, layer4.0) x 3 receivers (stem, layer2.0, features),
 * 1 epoch on 10,000 training images, scored on 10,000 test images, batch 256, SGD as the
 * reference; seconds per cell at the reference length (4 epochs, 60,000 images) are
 * extrapolated linearly from the measured training time and labelled as such.
 * `--cached-only` times only the cached grid; bench/compare.ts runs it one sender row at a
 * time next to tools/torch/bench_stitch.py (the same grid in PyTorch).
 */
import { createZooModel } from '../src/nn/zoo.js';
import { setInputSpec } from '../src/onnx/metadata.js';
import { openDataset } from '../src/data/resolve.js';
import { defaultNormalization } from '../src/data/known.js';
import { listCuts } from '../src/stitch/cuts.js';
import { StitchContext } from '../src/stitch/context.js';
import { CellSessions, DEFAULT_CELL_OPTIONS, runCell } from '../src/stitch/cell.js';
import { setQuiet } from '../src/util/progress.js';
import { machine, matmulPeak } from './common.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const quick = args.includes('--quick');
const json = args.includes('--json');
const threads = opt('--threads', 2);
const trainN = opt('--train', quick ? 2048 : 10000);
const testN = opt('--test', quick ? 1000 : 10000);
const epochs = opt('--epochs', 1);
const list = (name: string, fallback: string[]): string[] => (args.includes(name) ? (args[args.indexOf(name) + 1] ?? '').split(',').filter(Boolean) : fallback);
const senderNames = list('--senders', ['stem', 'layer2.0', 'layer4.0']);
const receiverNames = list('--receivers', ['stem', 'layer2.0', 'features']);
const cacheSettings = args.includes('--cached-only') ? [2048] : [2048, 0];
const log = (s: string): void => {
  if (!json) console.log(s);
};
setQuiet(true);

const train = await openDataset('fashion-mnist', 'train');
const test = await openDataset('fashion-mnist', 'test');
const make = (seed: number) => {
  const m = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.5, input: [1, 28, 28], classes: 10, seed });
  const n = defaultNormalization('fashion-mnist', 1);
  setInputSpec(m, { shape: [1, 28, 28], mean: n.mean, std: n.std });
  return m;
};
const a = make(1),
  b = make(2);
const pick = (cuts: ReturnType<typeof listCuts>, names: string[]) =>
  names.map((n) => {
    const c = cuts.find((k) => k.name === n);
    if (!c) throw new Error(`no cut "${n}"; the cuts are ${cuts.map((k) => k.name).join(', ')}`);
    return c;
  });
const senders = pick(listCuts(a), senderNames);
const receivers = pick(listCuts(b), receiverNames);
const peak = args.includes('--no-peak') ? NaN : await matmulPeak(threads, quick ? 1 : 3);
log(
  `machine: ${machine()}, ONNX Runtime intra-op threads: ${threads}${Number.isNaN(peak) ? '' : `; reference MatMul 2048x2048 peak ${peak.toFixed(1)} GFLOP/s`}`,
);
log(`data: ${train.source}; ${trainN} training images x ${epochs} epoch(s), ${testN} test images, batch 256`);

const results: Record<string, unknown>[] = [];
for (const cacheMb of cacheSettings) {
  const ctx = new StitchContext({ a, b, train, test, trainLimit: trainN, testLimit: testN, cacheMb, session: { threads } });
  const sessions = new CellSessions();
  const start = performance.now();
  const cells: { sender: string; receiver: string; stitch: string; seconds: number; accuracy: number }[] = [];
  for (const s of senders) {
    for (const r of receivers) {
      const res = await runCell(ctx, sessions, { kind: 'trained', sender: s, receiver: r }, { ...DEFAULT_CELL_OPTIONS, epochs });
      cells.push({ sender: s.name, receiver: r.name, stitch: res.stitch.kind, seconds: res.seconds, accuracy: res.accuracy });
    }
  }
  const total = (performance.now() - start) / 1000;
  await sessions.release();
  await ctx.release();
  const perCell = total / cells.length;
  const label = cacheMb ? `cached activations (cap ${cacheMb} MiB)` : 'no cache (prefix recomputed every batch)';
  results.push({ cache: label, cacheMb, cells: cells.length, secondsPerCell: perCell, cellsPerHour: 3600 / perCell, perCell: cells });
  log(`${label}: ${cells.length} cells in ${total.toFixed(1)} s: ${perCell.toFixed(1)} s per cell, ${(3600 / perCell).toFixed(0)} cells per hour`);
  log(`  per cell (s): ${cells.map((c) => `${c.sender}->${c.receiver} ${c.seconds.toFixed(1)}`).join(', ')}`);
}
const [cached, streamed] = results as { secondsPerCell: number }[];
if (streamed) log(`caching speed-up: ${(streamed.secondsPerCell / cached!.secondsPerCell).toFixed(2)}x`);
const scale = (4 * 60000) / (epochs * trainN);
log(
  `extrapolated to the reference length (4 epochs x 60,000 images; training time scales linearly, test scoring once): about ${(cached!.secondsPerCell * scale).toFixed(0)} s per cell cached (an upper bound: it scales the test scoring too)`,
);
if (json)
  console.log(
    JSON.stringify(
      { machine: machine(), threads, matmulPeakGflops: peak, data: train.source, trainImages: trainN, testImages: testN, epochs, results },
      null,
      2,
    ),
  );
