#!/usr/bin/env node
// The README's "bring your own model" table: full-size torchvision exports (made here by
// tools/torch/export_torchvision.py with Debian's python3-torch/python3-torchvision) run
// through every modelsmith command as a user would, one row per architecture:
//   inspect | eval: logits vs PyTorch's on a fixed batch (max |diff| / max(1, |logit|) < 1e-4)
//   | gradients vs PyTorch's (tools/torch/grad_reference.py + tools/grad-compare.mjs, 1e-4 relative)
//   | fine-tune 1 epoch lowers the loss (cross-entropy on 256 fixed test images, before/after)
//   | disassemble {0-4} and {5-9} + assemble | default stitch grid (least squares) | CKA.
// Data: the shipped Fashion-MNIST sample, adapted to each model with --fit --norm dataset.
//
//   npm run build && node tools/byom-table.mjs [--out runs/byom] [--only resnet18,vit_small] [--threads 2]
//
// Writes <out>/table.md and <out>/table.json; each cell holds the figure that shows it
// worked, or the one-line error. Never run by the tests (minutes per model on 2 cores).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = process.env.DIST ?? 'dist';
const lib = await import(join(ROOT, DIST, 'src', 'index.js'));
const CLI = join(ROOT, DIST, 'src', 'cli', 'main.js');
const PY = '/usr/bin/python3';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const out = resolve(opt('--out', 'runs/byom'));
const threads = opt('--threads', '2');
const FAMILIES = ['resnet18', 'resnet50', 'googlenet', 'mobilenet_v2', 'mobilenet_v3_small', 'efficientnet_b0', 'densenet121',
  'regnet_x_400mf', 'convnext_tiny', 'shufflenet_v2_x0_5', 'squeezenet1_1', 'vgg11_bn', 'vit_small'];
const only = opt('--only', '').split(',').filter(Boolean);
const families = only.length ? only : FAMILIES;
const models = join(out, 'models');
mkdirSync(models, { recursive: true });

const DATA = ['--data', 'fashion-mnist-sample', '--fit', '--norm', 'dataset'];

/** Runs the CLI; returns the parsed JSON result or throws the one-line error. */
function cli(argv, timeoutMs = 3_600_000) {
  const r = spawnSync(process.execPath, [CLI, ...argv, '--json', '--threads', threads], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 28 });
  if (r.status !== 0) {
    const line = (r.stderr || '').trim().split('\n').filter((l) => l.startsWith('modelsmith:')).pop() ?? `exit ${r.status}: ${(r.stderr || '').trim().split('\n').pop()}`;
    throw new Error(line.replace(/^modelsmith: (error: )?/, ''));
  }
  return JSON.parse(r.stdout);
}

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 3_600_000, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error((r.stderr || r.stdout || '').trim().split('\n').pop());
  return r.stdout;
}

const b64 = (s) => new Float32Array(new Uint8Array(Buffer.from(s, 'base64')).buffer);

/** max |ours - torch| / max(1, |torch|) over the fixed batch of <name>.io.json */
async function logitsError(file, io) {
  const session = await lib.ModelSession.create(lib.openModel(file), { threads: Number(threads) });
  const model = lib.openModel(file);
  const outs = await session.run({ [model.graph.inputs[0].name]: { dtype: 'float32', dims: io.input_shape, data: b64(io.input) } });
  await session.release();
  const got = outs[model.graph.outputs[0].name].data;
  const want = b64(io.logits);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]) / Math.max(1, Math.abs(want[i])));
  return worst;
}

/** Mean cross-entropy of a model on 256 fixed test images of the sample, adapted as the CLI does. */
async function testLoss(file) {
  const model = lib.openModel(file);
  const [, c, h, w] = model.graph.inputs[0].shape;
  const ds = await lib.openDataset(`fashion-mnist-sample::resize=${h}x${w};channels=${c}`, 'test', { announce: false });
  const norm = lib.defaultNormalization('fashion-mnist', c);
  const session = await lib.ModelSession.create(model, { threads: Number(threads) });
  const indices = Array.from({ length: 256 }, (_, i) => i * 3);
  const batch = await lib.loadBatch(ds, indices, { normalization: norm });
  const outs = await session.run({ [model.graph.inputs[0].name]: { dtype: 'float32', dims: [256, c, h, w], data: batch.x } });
  await session.release();
  const logits = outs[model.graph.outputs[0].name].data;
  const k = logits.length / 256;
  let loss = 0;
  for (let n = 0; n < 256; n++) {
    const row = logits.subarray(n * k, (n + 1) * k);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
    loss += lse - row[batch.labels[n]];
  }
  return loss / 256;
}

const cells = {
  inspect: async (f) => { const r = cli(['inspect', f.onnx]); return `${(r.parameters / 1e6).toFixed(2)}M params, ${Object.keys(r.operators).length} ops`; },
  eval: async (f) => {
    const err = await logitsError(f.onnx, JSON.parse(readFileSync(f.io, 'utf8')));
    if (!(err < 1e-4)) throw new Error(`logits differ from PyTorch's by ${err.toExponential(1)}`);
    const r = cli(['eval', f.onnx, ...DATA]);
    return `logits ${err.toExponential(0)}; acc ${(100 * r.accuracy).toFixed(1)}%`;
  },
  gradients: async (f) => {
    const ref = join(models, `${f.name}.grad.safetensors`);
    if (!existsSync(ref)) run(PY, [join(ROOT, 'tools', 'torch', 'grad_reference.py'), models, f.name, ref]);
    const text = run(process.execPath, [join(ROOT, 'tools', 'grad-compare.mjs'), f.onnx, ref]);
    return text.trim().split('\n').pop();
  },
  finetune: async (f) => {
    const before = await testLoss(f.onnx);
    const ft = join(f.dir, 'ft.onnx');
    cli(['train', f.onnx, ...DATA, '--epochs', '1', '--no-test', '-o', ft]);
    const after = await testLoss(ft);
    if (!(after < before)) throw new Error(`loss ${before.toFixed(3)} -> ${after.toFixed(3)}`);
    return `loss ${before.toFixed(2)} -> ${after.toFixed(2)}`;
  },
  lego: async (f) => {
    const a = cli(['disassemble', f.onnx, ...DATA, '--classes', '0-4', '--samples', '10', '-o', join(f.dir, 'c04.onnx')]);
    const b = cli(['disassemble', f.onnx, ...DATA, '--classes', '5-9', '--samples', '10', '-o', join(f.dir, 'c59.onnx')]);
    const asm = cli(['assemble', join(f.dir, 'c04.onnx'), join(f.dir, 'c59.onnx'), ...DATA, '-o', join(f.dir, 'asm.onnx')]);
    const frac = (r) => (r.component?.parameters ?? r.parameters) / (r.base?.parameters ?? r.parentParameters ?? NaN);
    return `params ${(100 * frac(a)).toFixed(0)}% / ${(100 * frac(b)).toFixed(0)}%; assembled ${asm.parameters ?? '?'}`;
  },
  stitch: async (f) => {
    const r = cli(['stitch', f.onnx, f.onnx, ...DATA, '--mode', 'lsq', '--train-limit', '200', '--test-limit', '200', '-o', join(f.dir, 'stitch')]);
    const n = r.senders?.length ?? r.rows?.length;
    const m = r.receivers?.length ?? r.columns?.length;
    return `${n}x${m} grid`;
  },
  cka: async (f) => {
    const r = cli(['cka', f.onnx, f.onnx, ...DATA, '--samples', '200', '-o', join(f.dir, 'cka')]);
    const n = r.senders?.length ?? r.rows?.length;
    return `${n}x${r.receivers?.length ?? r.columns?.length} matrix`;
  },
};

const rows = [];
for (const name of families) {
  const f = { name, onnx: join(models, `${name}.onnx`), io: join(models, `${name}.io.json`), dir: join(out, name) };
  mkdirSync(f.dir, { recursive: true });
  if (!existsSync(f.onnx)) run(PY, [join(ROOT, 'tools', 'torch', 'export_torchvision.py'), models, '--only', name]);
  const row = { name };
  for (const [col, fn] of Object.entries(cells)) {
    const t0 = Date.now();
    try {
      row[col] = { ok: true, text: await fn(f) };
    } catch (e) {
      row[col] = { ok: false, text: String(e.message ?? e).slice(0, 160) };
    }
    row[col].seconds = (Date.now() - t0) / 1000;
    process.stderr.write(`${name} ${col}: ${row[col].ok ? 'ok' : 'FAILED'} ${row[col].text} (${row[col].seconds.toFixed(0)} s)\n`);
  }
  rows.push(row);
  writeFileSync(join(out, 'table.json'), JSON.stringify(rows, null, 2));
}

const cols = Object.keys(cells);
const md = [`| model | ${cols.join(' | ')} |`, `|---|${cols.map(() => '---').join('|')}|`,
  ...rows.map((r) => `| ${r.name} | ${cols.map((c) => `${r[c].ok ? '✓' : '✗'} ${r[c].text.replace(/\|/g, '\\|')}`).join(' | ')} |`)];
writeFileSync(join(out, 'table.md'), md.join('\n') + '\n');
process.stdout.write(md.join('\n') + '\n');
