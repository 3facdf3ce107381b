#!/usr/bin/env node
// Model LEGO on the models users bring (issue 13): every disassembly and assembly run of
// docs/pending/wp-lego13.md, as a job list. Each job writes one JSON (the command's --json)
// under runs/lego13/<variant>/<model>/; finished jobs are skipped, so rerun to go on.
//
//   node tools/lego-users.mjs [--only <substring of variant/model/task>] [--list] [--parallel N] [--wait]
//   (--wait: keep polling for models that are still training instead of skipping their jobs)
//   node tools/lego-table.mjs runs/lego13            # the tables
//
// Models: runs/torch/{vgg_fm,resnet_fm}{,.nofold}.onnx (tools/torch/train_lego_models.py,
// fed with --mean 0.2860 --std 0.3530) and runs/models/*.onnx (zoo models, which carry
// their normalisation). A job whose model file is missing is skipped with a note.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = join(dirname(new URL(import.meta.url).pathname), '..');
const cli = join(root, process.env.DIST ?? 'dist', 'src/cli/main.js');
const out = join(root, process.env.OUT ?? 'runs/lego13');
const TORCH_NORM = ['--mean', '0.2860', '--std', '0.3530'];
const TASKS = ['0', '0-2', '3-9', '1,5,7'];

const torch = (name) => ({ name, file: join(root, 'runs/torch', `${name}.onnx`), flags: TORCH_NORM });
const zoo = (name) => ({ name, file: join(root, 'runs/models', `${name}.onnx`), flags: [] });
const TORCH = ['vgg_fm', 'vgg_fm.nofold', 'resnet_fm', 'resnet_fm.nofold'].map(torch);
const ZOO = ['vgg16-w0.125', 'r2222-w0.125', 'resnet50-w0.0625', 'inception-w0.0625'].map(zoo);
const FLATTEN = [torch('vgg_fm'), torch('vgg_fm.nofold'), zoo('lenet5-s1'), zoo('vgg-small-ft')];

/** variant name -> extra disassemble flags, and which models/tasks it runs on (in order of priority). */
const PLAN = [
  ['default', [], TORCH, TASKS],
  ['flatten-prune', ['--flatten', 'prune'], FLATTEN, TASKS],
  ['default', [], FLATTEN.slice(2), TASKS],
  ['maxdrop-0.01', ['--max-drop', '0.01'], [torch('vgg_fm'), torch('resnet_fm')], ['0-2', '3-9', '1,5,7']],
  ['default', [], ZOO, TASKS],
  [
    'recal-batchnorm',
    ['--recalibrate', 'batchnorm'],
    [torch('vgg_fm.nofold'), torch('resnet_fm.nofold'), zoo('r2222-w0.125'), zoo('resnet50-w0.0625')],
    ['0-2', '3-9', '1,5,7'],
  ],
  [
    'recal-none',
    ['--recalibrate', 'none'],
    [torch('vgg_fm'), torch('resnet_fm'), zoo('r2222-w0.125'), zoo('resnet50-w0.0625')],
    ['0-2', '3-9', '1,5,7'],
  ],
  ['ranking-float64', ['--ranking', 'float64'], [torch('vgg_fm'), torch('resnet_fm')], ['0-2', '3-9', '1,5,7']],
  ['maxdrop-0.01', ['--max-drop', '0.01'], ZOO, ['0-2', '3-9', '1,5,7']],
];

const jobs = [];
for (const [variant, extra, models, tasks] of PLAN) {
  for (const m of models) {
    for (const task of tasks) {
      const base = join(out, variant, m.name, `task-${task.replace(/,/g, '_')}`);
      if (jobs.some((j) => j.json === `${base}.json`)) continue;
      jobs.push({
        id: `${variant}/${m.name}/${task}`,
        model: m.file,
        json: `${base}.json`,
        log: `${base}.log`,
        args: [
          'disassemble',
          m.file,
          '--data',
          'fashion-mnist',
          '--task',
          task,
          '--samples',
          '50',
          ...m.flags,
          ...extra,
          '--threads',
          '2',
          '-o',
          `${base}.onnx`,
          '--json',
        ],
      });
    }
  }
}
// assembly of the VGG-style export's {0-2} and {3-9} default components: plain CLI (normalisation from the components'
// metadata; the default fitted scaling, the paper's mean-max scaling, no scaling), then with one epoch of fine-tuning
const comp = (task) => join(out, 'default', 'vgg_fm', `task-${task}.onnx`);
for (const [name, extra] of [
  ['assemble-vgg_fm', []],
  ['assemble-vgg_fm-meanmax', ['--scale-method', 'mean-max']],
  ['assemble-vgg_fm-unscaled', ['--no-scale']],
  ['assemble-vgg_fm-ft1', ['--finetune-epochs', '1']],
]) {
  const base = join(out, 'assembly', name);
  jobs.push({
    id: `assembly/${name}`,
    model: comp('0-2'),
    needs: [`${comp('0-2')}`, `${comp('3-9')}`],
    json: `${base}.json`,
    log: `${base}.log`,
    args: ['assemble', comp('0-2'), comp('3-9'), '--data', 'fashion-mnist', ...extra, '--threads', '1', '-o', `${base}.onnx`, '--json'],
  });
}

const argv = process.argv.slice(2);
const only = argv.includes('--only') ? argv[argv.indexOf('--only') + 1] : undefined;
const parallel = argv.includes('--parallel') ? Number(argv[argv.indexOf('--parallel') + 1]) : 1;
const todo = jobs.filter((j) => !only || j.id.includes(only));
if (argv.includes('--list')) {
  for (const j of todo)
    console.log(
      `${existsSync(j.json) ? 'done' : existsSync(j.model) ? 'todo' : 'wait'}  ${j.id}  modelsmith ${j.args.join(' ').replaceAll(root + '/', '')}`,
    );
  process.exit(0);
}

function run(j) {
  return new Promise((resolve) => {
    mkdirSync(dirname(j.json), { recursive: true });
    const started = Date.now();
    const child = spawn(process.execPath, [cli, ...j.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (code) => {
      writeFileSync(j.log, stderr);
      if (code === 0) {
        writeFileSync(`${j.json}.tmp`, stdout);
        renameSync(`${j.json}.tmp`, j.json);
      }
      console.log(
        `${code === 0 ? 'done' : `FAILED (${code})`} ${j.id} in ${((Date.now() - started) / 1000).toFixed(0)} s${code === 0 ? '' : `: ${stderr.trim().split('\n').pop()}`}`,
      );
      resolve();
    });
  });
}

const queue = todo.filter((j) => !existsSync(j.json));
const wait = argv.includes('--wait');
async function worker() {
  for (;;) {
    const k = queue.findIndex((j) => existsSync(j.model) && (j.needs ?? []).every((f) => existsSync(f)));
    if (k < 0) {
      // jobs that need models or components not written yet: poll while something can still produce them
      if (!wait || queue.length === 0) return;
      await new Promise((r) => setTimeout(r, 60_000));
      continue;
    }
    const [j] = queue.splice(k, 1);
    if (existsSync(j.json) || !lock(j)) continue;
    try {
      await run(j);
    } finally {
      rmSync(`${j.json}.lock`, { force: true });
    }
  }
}

/** Another runner may be on the same list: a job is taken by creating its lock file (remove stale *.lock after a crash). */
function lock(j) {
  mkdirSync(dirname(j.json), { recursive: true });
  try {
    closeSync(openSync(`${j.json}.lock`, 'wx'));
    return true;
  } catch {
    return false;
  }
}
await Promise.all(Array.from({ length: parallel }, worker));
for (const j of queue) console.log(`skipped ${j.id}: ${existsSync(j.model) ? 'its inputs are not there yet' : `${j.model} is not there yet`}`);
