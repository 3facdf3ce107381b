#!/usr/bin/env node
// Summary of the grids written by tools/stitch-grids.sh (README "Results … Stitching"):
// per pair and measure, the lower-left-triangle mean vs elsewhere for the trained pair
// and the three controls, then the trained pair's matrix (`--all`: every kind's matrix).
//   node tools/stitch-table.mjs [runs/stitch-full] [--all]
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const all = process.argv.includes('--all');
const dir = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? 'runs/stitch-full';
const KINDS = ['trained', 'random-sender', 'random-receiver', 'random-both'];
const f2 = (v) => (v === null || v === undefined ? '-' : v.toFixed(2));
for (const pair of readdirSync(dir).sort()) {
  for (const mode of ['task', 'task-trained', 'lsq', 'lsq-trained', 'cka']) {
    const file = join(dir, pair, mode, 'matrix.json');
    if (!existsSync(file)) continue;
    const r = JSON.parse(readFileSync(file, 'utf8'));
    const tri = mode === 'cka' ? r.triangles.biased : r.triangles;
    const mats = mode === 'cka' ? r.matrices.biased : r.matrices.accuracy;
    const done = mode === 'cka' ? '' : ` (${r.complete ? 'complete' : 'incomplete'})`;
    console.log(`\n${pair.replace('--', ' -> ')}, ${mode === 'cka' ? 'linear CKA (biased)' : `${mode} stitches, accuracy`}${done}`);
    console.log(KINDS.filter((k) => tri[k]).map((k) => `${k} ${f2(tri[k].lowerLeft)} / ${f2(tri[k].elsewhere)}`).join('; '));
    for (const kind of all ? KINDS.filter((k) => mats[k]) : ['trained']) {
      if (all) console.log(`\n${kind}`);
      console.log(`| sender \\ receiver | ${r.receivers.join(' | ')} |`);
      console.log(`|---|${r.receivers.map(() => '---').join('|')}|`);
      mats[kind].forEach((row, i) => console.log(`| ${r.senders[i]} | ${row.map(f2).join(' | ')} |`));
    }
  }
}
