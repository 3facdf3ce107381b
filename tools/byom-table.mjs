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
//   npm run build && node tools/byom-table.mjs [--out runs/byom] [--only resnet18,vit_small] [--cols stitch,cka] [--threads 2]
//
// Writes <out>/table.md and <out>/table.json (a rerun with --only/--cols replaces those
// cells and keeps the others); each cell holds the figure that shows it worked, or the
// one-line error. Never run by the tests (minutes per model on 2 cores). The fine-tuning
// epoch runs on 1,000 of the sample's training images (100 per class, written once as
// IDX files under <out>/data/fashion-mnist) so that a row takes minutes, not an hour.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
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
  'regnet_x_400mf', 'convnext_tiny', 'shufflenet_v2_x0_5', 'squeezenet1_1', 'vgg11_bn', 'vit_small', 'swin_t'];
const only = opt('--only', '').split(',').filter(Boolean);
const families = only.length ? only : FAMILIES;
const models = join(out, 'models');
mkdirSync(models, { recursive: true });

const DATA = ['--data', 'fashion-mnist-sample', '--fit', '--norm', 'dataset'];
const FT_DATA = ['--data', `idx:${subset(join(out, 'data', 'fashion-mnist'), 100)}`, '--fit', '--norm', 'dataset'];

/** The first `perClass` training images of each class of the shipped sample, as IDX files in `dir` (test set whole). */
function subset(dir, perClass) {
  if (existsSync(join(dir, 'train-labels-idx1-ubyte'))) return dir;
  mkdirSync(dir, { recursive: true });
  const src = join(ROOT, 'data', 'sample', 'fashion-mnist');
  const read = (f) => gunzipSync(readFileSync(join(src, `${f}.gz`)));
  const images = read('train-images-idx3-ubyte'), labels = read('train-labels-idx1-ubyte');
  const n = labels.readUInt32BE(4), pixels = images.readUInt32BE(8) * images.readUInt32BE(12);
  const keep = [], count = new Array(10).fill(0);
  for (let i = 0; i < n; i++) if (count[labels[8 + i]]++ < perClass) keep.push(i);
  const img = Buffer.alloc(16 + keep.length * pixels), lab = Buffer.alloc(8 + keep.length);
  images.copy(img, 0, 0, 16); labels.copy(lab, 0, 0, 8);
  img.writeUInt32BE(keep.length, 4); lab.writeUInt32BE(keep.length, 4);
  keep.forEach((i, j) => { images.copy(img, 16 + j * pixels, 16 + i * pixels, 16 + (i + 1) * pixels); lab[8 + j] = labels[8 + i]; });
  for (const f of ['t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) writeFileSync(join(dir, f), read(f));
  writeFileSync(join(dir, 'train-images-idx3-ubyte'), img);
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), lab);
  return dir;
}

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

// fewer held-out and recalibration images than the defaults (200 per class, 2048): minutes, not a quarter hour
const LEGO_FLAGS = ['--holdout', '50', '--recal-samples', '512'];

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
    cli(['train', f.onnx, ...FT_DATA, '--epochs', '1', '--no-test', '-o', ft]);
    const after = await testLoss(ft);
    if (!(after < before)) throw new Error(`loss ${before.toFixed(3)} -> ${after.toFixed(3)}`);
    return `loss ${before.toFixed(2)} -> ${after.toFixed(2)}`;
  },
  lego: async (f) => {
    const a = cli(['disassemble', f.onnx, ...DATA, '--task', '0-4', '--samples', '10', ...LEGO_FLAGS, '-o', join(f.dir, 'c04.onnx')]);
    const b = cli(['disassemble', f.onnx, ...DATA, '--task', '5-9', '--samples', '10', ...LEGO_FLAGS, '-o', join(f.dir, 'c59.onnx')]);
    const asm = cli(['assemble', join(f.dir, 'c04.onnx'), join(f.dir, 'c59.onnx'), ...DATA, '--scale-samples', '500', '-o', join(f.dir, 'asm.onnx')]);
    const frac = (r) => (r.component?.parameters ?? r.parameters) / (r.base?.parameters ?? r.parentParameters ?? NaN);
    return `params ${(100 * frac(a)).toFixed(0)}% / ${(100 * frac(b)).toFixed(0)}%; assembled ${asm.parameters ?? '?'}`;
  },
  stitch: async (f) => {
    // resumes a grid left unfinished in <out>/<model>/stitch (finished cells are kept)
    cli(['stitch', f.onnx, f.onnx, ...DATA, '--mode', 'lsq', '--train-limit', '200', '--test-limit', '200', '-o', join(f.dir, 'stitch')]);
    const m = JSON.parse(readFileSync(join(f.dir, 'stitch', 'matrix.json'), 'utf8'));
    const skipped = m.cells.skipped?.length ?? 0;
    if (!m.complete || m.cells.done + skipped < m.cells.total) throw new Error(`grid incomplete: ${m.cells.done}/${m.cells.total} cells`);
    // a model stitched into itself at the same cut: least squares must find the identity
    let same = 0;
    m.senders.forEach((s, i) => m.receivers.forEach((r, j) => { if (s === r) same = Math.max(same, m.matrices.fitError.trained[i][j]); }));
    const skip = skipped ? ` (${skipped} cells refused, e.g. ${m.cells.skipped[0].sender} -> ${m.cells.skipped[0].receiver}: ${m.cells.skipped[0].reason.split(': ').pop().slice(0, 80)})` : '';
    return `${m.senders.length}x${m.receivers.length} grid${skip}; same-cut fit error ≤ ${same.toExponential(0)}`;
  },
  cka: async (f) => {
    const r = cli(['cka', f.onnx, f.onnx, ...DATA, '--samples', '200', '-o', join(f.dir, 'cka')]);
    const n = r.senders?.length ?? r.rows?.length;
    return `${n}x${r.receivers?.length ?? r.columns?.length} matrix`;
  },
};

const tableFile = join(out, 'table.json');
const rows = existsSync(tableFile) ? JSON.parse(readFileSync(tableFile, 'utf8')) : [];
const cols = opt('--cols', '').split(',').filter(Boolean);
for (const c of cols) if (!(c in cells)) throw new Error(`--cols: unknown column ${c} (expected ${Object.keys(cells).join(', ')})`);
for (const name of families) {
  const f = { name, onnx: join(models, `${name}.onnx`), io: join(models, `${name}.io.json`), dir: join(out, name) };
  mkdirSync(f.dir, { recursive: true });
  if (!existsSync(f.onnx)) run(PY, [join(ROOT, 'tools', 'torch', 'export_torchvision.py'), models, '--only', name]);
  let row = rows.find((r) => r.name === name);
  if (!row) rows.push((row = { name }));
  for (const [col, fn] of Object.entries(cells)) {
    if (cols.length && !cols.includes(col)) continue;
    const t0 = Date.now();
    try {
      row[col] = { ok: true, text: await fn(f) };
    } catch (e) {
      row[col] = { ok: false, text: String(e.message ?? e).slice(0, 160) };
    }
    row[col].seconds = (Date.now() - t0) / 1000;
    process.stderr.write(`${name} ${col}: ${row[col].ok ? 'ok' : 'FAILED'} ${row[col].text} (${row[col].seconds.toFixed(0)} s)\n`);
    // merge this cell into the file as it is now: another run may be filling other rows
    const now = existsSync(tableFile) ? JSON.parse(readFileSync(tableFile, 'utf8')) : [];
    let mine = now.find((r) => r.name === name);
    if (!mine) now.push((mine = { name }));
    mine[col] = row[col];
    writeFileSync(`${tableFile}.${process.pid}.tmp`, JSON.stringify(now, null, 2));
    renameSync(`${tableFile}.${process.pid}.tmp`, tableFile);
    rows.splice(0, rows.length, ...now);
  }
}

const names = Object.keys(cells);
const cell = (r, c) => (r[c] ? `${r[c].ok ? '✓' : '✗'} ${r[c].text.replace(/\|/g, '\\|')}` : '-');
const md = [`| model | ${names.join(' | ')} |`, `|---|${names.map(() => '---').join('|')}|`,
  ...FAMILIES.map((n) => rows.find((r) => r.name === n)).filter(Boolean).map((r) => `| ${r.name} | ${names.map((c) => cell(r, c)).join(' | ')} |`)];
writeFileSync(join(out, 'table.md'), md.join('\n') + '\n');
process.stdout.write(md.join('\n') + '\n');
