/**
 * modelsmith next to PyTorch on the same machine, same threads, back to back: the training
 * step (bench/training.ts vs tools/torch/bench_training.py) and inference (bench/inference.ts
 * vs tools/torch/bench_inference.py), one model at a time and alternating, so that a noisy
 * neighbour hits both sides alike. Prints both figures and the ratio (modelsmith / PyTorch,
 * > 1: modelsmith is faster) per model with the CPU model.
 *
 *   npm run bench:compare [-- --quick] [-- --threads 2] [-- --json] [-- --python /usr/bin/python3]
 *
 * Without a Python that imports torch it prints one line saying so and exits 0.
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

function runJson(cmd: string, argv: string[]): { results: Record<string, unknown>[] } {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${(r.stderr || '').trim().split('\n').pop()}`);
  return JSON.parse(r.stdout) as { results: Record<string, unknown>[] };
}

const rows: Row[] = [];
const log = (s: string): void => {
  if (!json) console.log(s);
};
log(`machine: ${machine()}; threads ${threads}; PyTorch ${torchVersion}${quick ? ' (--quick: a smoke check, not a measurement)' : ''}`);
for (const kind of ['training', 'inference'] as const) {
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
if (json) console.log(JSON.stringify({ machine: machine(), threads: Number(threads), pytorch: torchVersion, quick, rows }, null, 2));
