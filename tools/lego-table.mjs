#!/usr/bin/env node
// Markdown tables of the disassembly JSONs (modelsmith disassemble --json) under a folder:
// runs/lego-full/<model>/task-*.json (tools/lego-runs.sh) or
// runs/lego13/<variant>/<model>/task-*.json (tools/lego-users.mjs).
// Base N-way: the full model's arg-max over all classes on the task's test images; base
// k-way: over the task's classes only; the change is the component against base k-way.
// With variants, extra tables compare them: folded vs unfolded exports (<m> vs <m>.nofold),
// --flatten keep (default) vs prune, recalibration affine (default) vs batchnorm vs none,
// --max-drop vs the reference thresholds, float32 vs float64 sample ranking.
import { readdirSync, readFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? 'runs/lego-full';
const pct = (x) => (x === undefined ? '-' : `${(100 * x).toFixed(2)}%`);
const signed = (x) => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)}`;
const compact = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n));
const TASKS = ['0', '0-2', '3-9', '1_5_7'];
const taskLabel = (t) => `{${t.replace(/_/g, ',')}}`;
const isDir = (p) => existsSync(p) && statSync(p).isDirectory();

/** results[variant][model][task] */
const results = {};
const load = (variant, model, folder) => {
  for (const task of TASKS) {
    const f = join(folder, `task-${task}.json`);
    if (!existsSync(f)) continue;
    ((results[variant] ??= {})[model] ??= {})[task] = JSON.parse(readFileSync(f, 'utf8'));
  }
};
for (const a of readdirSync(dir).sort()) {
  const p = join(dir, a);
  if (!isDir(p)) continue;
  if (readdirSync(p).some((f) => /^task-.*\.json$/.test(f))) load('', a, p);
  else for (const b of readdirSync(p).sort()) if (isDir(join(p, b))) load(a, b, join(p, b));
}
const kWay = (r) => r.base.kWay?.accuracy;
const worstClass = (r) => Math.min(...Object.values(r.component.perClass));
const out = [];
const section = (title, header, rows) => {
  if (!rows.length) return;
  out.push(`### ${title}`, '', `| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`), '');
};

for (const variant of Object.keys(results).sort((a, b) => (a === 'default' ? -1 : b === 'default' ? 1 : a.localeCompare(b)))) {
  const rows = [];
  for (const [model, tasks] of Object.entries(results[variant])) {
    for (const [task, r] of Object.entries(tasks)) {
      const base = kWay(r) ?? r.base.accuracy;
      const relaxed = r.validation?.relaxed?.map((x) => x.class).join(',') || '-';
      const recal = r.recalibration
        ? r.recalibration.skipped
          ? `${r.recalibration.mode}: none`
          : r.recalibration.mode === 'affine'
            ? `${r.recalibration.layers.length} layers`
            : `${r.recalibration.batchNormLayers} BN`
        : '-';
      rows.push([
        model,
        taskLabel(task),
        pct(r.base.accuracy),
        pct(kWay(r)),
        pct(r.component.accuracy),
        signed(r.component.accuracy - base),
        pct(worstClass(r)),
        relaxed,
        recal,
        `${compact(r.base.parameters)} -> ${compact(r.component.parameters)}`,
        `${(r.base.flopsPerImage / 1e6).toFixed(1)} -> ${(r.component.flopsPerImage / 1e6).toFixed(1)}`,
      ]);
    }
  }
  section(
    `Disassembly${variant ? `: ${variant}` : ''}`,
    [
      'model',
      'task',
      'base N-way',
      'base k-way',
      'component',
      'vs base k-way',
      'worst class',
      'relaxed classes',
      'recalibrated',
      'parameters',
      'MFLOPs/image',
    ],
    rows,
  );
}

/** A comparison of `variants` (or of models within one variant) task by task. */
const compare = (title, pairs, label) => {
  const rows = [];
  for (const [name, a, b] of pairs) {
    for (const task of TASKS) {
      const ra = a?.[task],
        rb = b?.[task];
      if (!ra || !rb) continue;
      rows.push([
        name,
        taskLabel(task),
        pct(kWay(ra)),
        pct(ra.component.accuracy),
        compact(ra.component.parameters),
        pct(worstClass(ra)),
        pct(rb.component.accuracy),
        compact(rb.component.parameters),
        pct(worstClass(rb)),
        signed(rb.component.accuracy - ra.component.accuracy),
      ]);
    }
  }
  section(title, ['model', 'task', 'base k-way', `${label[0]}`, 'params', 'worst class', `${label[1]}`, 'params', 'worst class', 'difference'], rows);
};
const def = results.default ?? {};
compare(
  'Folded vs unfolded export (default settings)',
  Object.keys(def)
    .filter((m) => def[`${m}.nofold`])
    .map((m) => [m, def[m], def[`${m}.nofold`]]),
  ['folded', 'unfolded'],
);
for (const [variant, label] of [
  ['flatten-prune', ['flatten keep', 'flatten prune']],
  ['recal-batchnorm', ['affine', 'batchnorm']],
  ['recal-none', ['affine', 'none']],
  ['ranking-float64', ['float32 ranking', 'float64 ranking']],
  ['maxdrop-0.01', ['reference thresholds', '--max-drop 0.01']],
]) {
  const v = results[variant] ?? {};
  compare(
    `${label[0]} vs ${label[1]}`,
    Object.keys(v)
      .filter((m) => def[m])
      .map((m) => [m, def[m], v[m]]),
    label,
  );
}
const asm = join(dir, 'assembly');
if (isDir(asm)) {
  const rows = [];
  for (const f of readdirSync(asm)
    .filter((x) => x.endsWith('.json'))
    .sort()) {
    const r = JSON.parse(readFileSync(join(asm, f), 'utf8'));
    const u = r.union[0];
    rows.push([
      f.replace(/\.json$/, ''),
      r.method,
      r.scaled ? (r.scaleMethod ?? 'mean-max') : 'no',
      r.components.map((c) => `${c.classes.join(',')}: ${pct(c.accuracy)}`).join('; '),
      pct(u?.accuracy),
      r.finetune ? `${pct(r.finetune.union[0]?.accuracy)} (${r.finetune.epochs.length} ep.)` : '-',
      compact(r.parameters),
    ]);
  }
  section('Assembly (full test set)', ['run', 'method', 'scaled', 'components (k-way)', 'assembled', 'fine-tuned', 'parameters'], rows);
}
for (const f of readdirSync(dir)
  .filter((x) => /^mismatch-.*\.json$/.test(x))
  .sort()) {
  const rows = JSON.parse(readFileSync(join(dir, f), 'utf8')).map((m) => [
    m.file.split('/').slice(-2).join('/'),
    `{${m.task.join(',')}}`,
    pct(m.own.accuracy),
    m.own.meanMaxSoftmax.toFixed(3),
    m.others.samples,
    Object.entries(m.others.share)
      .map(([c, v]) => `${c}: ${(100 * v).toFixed(1)}%`)
      .join(', '),
    m.others.samples ? m.others.meanMaxSoftmax.toFixed(3) : '-',
  ]);
  section(
    `Mismatch (${f.replace(/^mismatch-|\.json$/g, '')})`,
    ['component', 'task', 'own accuracy', 'own mean max softmax', 'other images', 'share of predictions per class', 'other mean max softmax'],
    rows,
  );
}
console.log(out.join('\n'));
