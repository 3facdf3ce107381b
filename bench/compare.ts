/**
 * modelsmith next to PyTorch on the same machine, same threads, back to back: the training
 * step (bench/training.ts vs tools/torch/bench_training.py) and inference (bench/inference.ts
 * vs tools/torch/bench_inference.py), one model at a time and alternating, so that a noisy
 * neighbour hits both sides alike. Prints both figures and the ratio (modelsmith / PyTorch,
 * > 1: modelsmith is faster) per model with the CPU model.
 *
 *   npm run bench:compare [-- --quick] [-- --threads 2] [-- --json] [-- --python /usr/bin/python3] [-- --default-malloc]
 *
 * Stitching: the grid of bench/stitch.ts (cached sender activations) next to
 * tools/torch/bench_stitch.py, the same grid in plain PyTorch, one sender row at a time
 * and alternating; per cell both times and the ratio (PyTorch seconds / modelsmith
 * seconds, > 1: modelsmith is faster), and the worst cell.
 *
 *   npm run bench:compare -- --only stitch [--quick] [--stitch-train 10000] [--stitch-test 10000]
 *
 * `--only training,inference,stitch` picks sections (default all three). Without a
 * Python that imports torch it prints one line saying so and exits 0.
 *
 * Both sides run with glibc's allocator told to keep and reuse freed memory
 * (ALLOCATOR_ENV): PyTorch's CPU allocator hands every large tensor back to the system
 * and maps a fresh one on the next step, and on a VM where a first-touched page is
 * expensive (this project's CI machines: 6-10 s per GB) that made PyTorch 2-3x slower
 * than its kernels (training, 2-core AMD EPYC VM, 2026-12-07: VGG-11 96.7 -> 294.5
 * images/s, ResNet-18 23.3 -> 86.9, ResNet(1,1,1,1) w0.25 744 -> 1501-2056); modelsmith's
 * figures do not move with it (ONNX Runtime's arena already reuses its buffers).
 * `--default-malloc` runs both with the allocator's defaults, as the figures before that
 * date were measured.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { machine } from './common.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: string): string => (args.includes(name) ? (args[args.indexOf(name) + 1] ?? dflt) : dflt);
const quick = args.includes('--quick');
const json = args.includes('--json');
const threads = flag('--threads', '2');
const python = flag('--python', process.env['PYTHON'] ?? '/usr/bin/python3');
/**
 * glibc malloc tunables for both benchmark processes: no mmap for large blocks (they come
 * from the heap and are reused), never trim the heap, grow it 256 MB at a time.
 */
const ALLOCATOR_ENV: Record<string, string> = args.includes('--default-malloc')
  ? {}
  : { MALLOC_MMAP_MAX_: '0', MALLOC_TRIM_THRESHOLD_: String(2 ** 40), MALLOC_TOP_PAD_: String(256 * 2 ** 20) };
const childEnv = { ...process.env, ...ALLOCATOR_ENV };
const SECTIONS = ['training', 'inference', 'stitch'] as const;
const sections = flag('--only', SECTIONS.join(',')).split(',');
for (const s of sections) {
  if (!(SECTIONS as readonly string[]).includes(s)) {
    console.log(`bench:compare: unknown section "${s}" in --only; expected some of ${SECTIONS.join(', ')}`);
    process.exit(2);
  }
}
const stitchTrain = flag('--stitch-train', quick ? '2048' : '10000');
const stitchTest = flag('--stitch-test', quick ? '1000' : '10000');
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

/** The same model under both benchmarks' names. */
const MODELS = [
  { torch: 'vgg11', ours: 'VGG-11', label: 'VGG-11 3x32x32' },
  { torch: 'resnet18', ours: 'ResNet-18', label: 'ResNet-18 3x32x32' },
  { torch: 'resnet1111_w0.25', ours: 'ResNet(1,1,1,1)', label: 'ResNet(1,1,1,1) w0.25 1x28x28', trainingOnly: true },
];

const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
if (probe.status !== 0) {
  console.log(
    `bench:compare: no PyTorch to compare with (${python} -c "import torch" failed${probe.error ? `: ${probe.error.message}` : ''}); install python3-torch (Debian) or pass --python <path>`,
  );
  process.exit(0);
}
const torchVersion = probe.stdout.trim();

interface Row {
  kind: 'training' | 'inference';
  model: string;
  batch: number;
  modelsmith: number;
  pytorch: number;
  ratio: number;
}

function runJson<T = { results: Record<string, unknown>[] }>(cmd: string, argv: string[]): T {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 26, env: childEnv });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${(r.stderr || '').trim().split('\n').pop()}`);
  return JSON.parse(r.stdout) as T;
}

interface StitchRow {
  sender: string;
  receiver: string;
  stitch: string;
  modelsmithSeconds: number;
  pytorchSeconds: number;
  /** PyTorch seconds / modelsmith seconds: > 1, modelsmith is faster */
  ratio: number;
}

const rows: Row[] = [];
const stitchRows: StitchRow[] = [];
const log = (s: string): void => {
  if (!json) console.log(s);
};
const allocator = Object.keys(ALLOCATOR_ENV).length
  ? `glibc malloc reusing freed memory (${Object.entries(ALLOCATOR_ENV)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')})`
  : 'glibc malloc defaults';
log(
  `machine: ${machine()}; threads ${threads}; PyTorch ${torchVersion}; both sides: ${allocator}${quick ? ' (--quick: a smoke check, not a measurement)' : ''}`,
);
for (const kind of ['training', 'inference'] as const) {
  if (!sections.includes(kind)) continue;
  for (const m of MODELS) {
    if (kind === 'inference' && m.trainingOnly) continue;
    const ours = runJson(process.execPath, [join(here, `${kind}.js`), '--json', '--threads', threads, ...(quick ? ['--quick'] : []), '--only', m.ours]);
    const theirs = runJson(python, [
      join(root, 'tools', 'torch', `bench_${kind}.py`),
      '--json',
      '--threads',
      threads,
      '--models',
      m.torch,
      ...(quick ? ['--quick'] : []),
    ]);
    for (const t of theirs.results) {
      const batch = Number(t['batch']);
      const o = ours.results.find((r) => String(r['model']).startsWith(m.ours) && Number(r['batch']) === batch);
      if (!o) continue;
      const a = Number(o['imagesPerSecond']),
        b = Number(t['images_per_s']);
      rows.push({ kind, model: m.label, batch, modelsmith: a, pytorch: b, ratio: a / b });
      log(
        `${kind.padEnd(9)} ${m.label.padEnd(30)} batch ${String(batch).padStart(3)}: modelsmith ${a.toFixed(1).padStart(8)} images/s, PyTorch ${b.toFixed(1).padStart(8)} images/s, ratio ${(a / b).toFixed(2)}`,
      );
    }
  }
}
if (sections.includes('stitch')) {
  const senders = ['stem', 'layer2.0', 'layer4.0'];
  const size = ['--train', stitchTrain, '--test', stitchTest, '--threads', threads, '--json'];
  log(
    `stitching grid: ${stitchTrain} training images x 1 epoch, ${stitchTest} test images, batch 256, cached sender activations; one sender row at a time, modelsmith then PyTorch`,
  );
  for (const sender of senders) {
    type Cell = { sender: string; receiver: string; stitch: string; seconds: number };
    const ours = runJson<{ results: { perCell: Cell[] }[] }>(process.execPath, [
      join(here, 'stitch.js'),
      ...size,
      '--senders',
      sender,
      '--cached-only',
      '--no-peak',
    ]);
    const theirs = runJson<{ cells: Cell[] }>(python, [join(root, 'tools', 'torch', 'bench_stitch.py'), ...size, '--senders', sender]);
    const oursCells = ours.results[0]?.perCell ?? [];
    for (const t of theirs.cells) {
      const o = oursCells.find((c) => c.sender === t.sender && c.receiver === t.receiver);
      if (!o) continue;
      const row = {
        sender: t.sender,
        receiver: t.receiver,
        stitch: o.stitch,
        modelsmithSeconds: o.seconds,
        pytorchSeconds: t.seconds,
        ratio: t.seconds / o.seconds,
      };
      stitchRows.push(row);
      log(
        `stitch    ${`${row.sender} -> ${row.receiver}`.padEnd(22)} ${row.stitch.padEnd(14)}: modelsmith ${row.modelsmithSeconds.toFixed(2).padStart(7)} s, PyTorch ${row.pytorchSeconds.toFixed(2).padStart(7)} s, ratio ${row.ratio.toFixed(2)}`,
      );
    }
  }
  if (stitchRows.length) {
    const sum = (f: (r: StitchRow) => number): number => stitchRows.reduce((acc, r) => acc + f(r), 0);
    const worst = stitchRows.reduce((w, r) => (r.ratio < w.ratio ? r : w));
    const n = stitchRows.length;
    log(
      `stitch    per cell: modelsmith ${(sum((r) => r.modelsmithSeconds) / n).toFixed(2)} s, PyTorch ${(sum((r) => r.pytorchSeconds) / n).toFixed(2)} s, ratio ${(sum((r) => r.pytorchSeconds) / sum((r) => r.modelsmithSeconds)).toFixed(2)}; worst cell ${worst.sender} -> ${worst.receiver} ratio ${worst.ratio.toFixed(2)}`,
    );
  }
}
if (json)
  console.log(
    JSON.stringify(
      {
        machine: machine(),
        threads: Number(threads),
        pytorch: torchVersion,
        allocator: ALLOCATOR_ENV,
        quick,
        rows,
        stitch: { trainImages: Number(stitchTrain), testImages: Number(stitchTest), cells: stitchRows },
      },
      null,
      2,
    ),
  );
