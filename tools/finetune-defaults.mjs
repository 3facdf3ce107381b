#!/usr/bin/env node
// Measures fine-tuning settings on exported models: the table behind `train`'s defaults
// for an .onnx input (README "Fine-tuning exported models: the defaults"). For each model and each option set it
// runs `modelsmith train <model> --data <data> --epochs E <options>` and records whether
// it diverged, the last epoch's training loss, the validation accuracy and the test
// accuracy, next to the model's test accuracy before fine-tuning (`modelsmith eval`).
//
//   npx tsc -p . && node tools/finetune-defaults.mjs --models a.onnx,b.onnx [--epochs 1,10]
//     [--data fashion-mnist-sample] [--flags "--mean 0.286 --std 0.353"] [--sets lr0.05,lr0.01,...]
//     [--threads 2] [--out runs/finetune]
//
// Writes <out>/table.md and <out>/table.json. Never run by the tests (minutes per run).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
const models = opt('--models', '').split(',').filter(Boolean);
if (!models.length) {
  console.error('usage: node tools/finetune-defaults.mjs --models a.onnx,b.onnx [--epochs 1,10] [--data spec] [--flags "..."] [--sets a,b] [--out dir]');
  process.exit(2);
}
const epochs = opt('--epochs', '1,10').split(',').map(Number);
const data = ['--data', opt('--data', 'fashion-mnist-sample'), ...opt('--flags', '').split(' ').filter(Boolean)];
const threads = opt('--threads', '2');
const out = resolve(opt('--out', 'runs/finetune'));
mkdirSync(out, { recursive: true });

// The option sets compared (SGD, momentum 0.9, cosine): lr0.05 is the from-scratch default, then lower peak rates,
// warm-up (in epochs), gradient-norm clipping; `defaults` passes no flags (the command's own choice for an .onnx model).
const SETS = {
  'lr0.05': ['--lr', '0.05', '--warmup', '0'],
  'lr0.05+clip1': ['--lr', '0.05', '--warmup', '0', '--clip', '1'],
  'lr0.01': ['--lr', '0.01', '--warmup', '0'],
  'lr0.01+warmup0.3': ['--lr', '0.01', '--warmup', '0.3'],
  'lr0.01+clip1': ['--lr', '0.01', '--warmup', '0', '--clip', '1'],
  'lr0.005': ['--lr', '0.005', '--warmup', '0'],
  'adam1e-3': ['--optimizer', 'adam', '--lr', '0.001', '--warmup', '0'],
  'adam-defaults': ['--optimizer', 'adam'],
  defaults: [],
};
const chosen = opt('--sets', '').split(',').filter(Boolean);
const sets = chosen.length ? Object.fromEntries(chosen.map((k) => [k, SETS[k]])) : SETS;

function cli(argv) {
  const r = spawnSync(process.execPath, [CLI, ...argv, '--json', '--quiet', '--threads', threads], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error((r.stderr || '').trim().split('\n').pop().replace(/^modelsmith: (error: )?/, ''));
  return JSON.parse(r.stdout);
}

const rows = [];
for (const model of models) {
  const before = cli(['eval', model, ...data]).accuracy;
  for (const e of epochs) {
    for (const [name, flags] of Object.entries(sets)) {
      const row = { model: basename(model), epochs: e, set: name, before };
      try {
        const r = cli(['train', model, ...data, '--epochs', String(e), ...flags, '-o', join(out, `${basename(model, '.onnx')}-${e}-${rows.length}.onnx`)]);
        const last = r.epochs.at(-1);
        Object.assign(row, { diverged: false, trainLoss: last.trainLoss, firstLoss: r.epochs[0].trainLoss, val: last.valAccuracy, test: r.test?.accuracy ?? null });
      } catch (err) {
        Object.assign(row, { diverged: true, error: err.message });
      }
      rows.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
      writeFileSync(join(out, 'table.json'), JSON.stringify(rows, null, 2));
    }
  }
}

const pct = (v) => (v === null || v === undefined ? '-' : `${(100 * v).toFixed(1)}%`);
const md = ['| model | epochs | settings | test acc before | result | last-epoch train loss | val acc | test acc after |', '|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.model} | ${r.epochs} | ${r.set} | ${pct(r.before)} | ${r.diverged ? `diverged: ${r.error.replace(/\|/g, '\\|').slice(0, 70)}` : 'ok'} | ${r.diverged ? '-' : r.trainLoss.toFixed(4)} | ${pct(r.val)} | ${pct(r.test)} |`)];
writeFileSync(join(out, 'table.md'), md.join('\n') + '\n');
process.stdout.write(md.join('\n') + '\n');
