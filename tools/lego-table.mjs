#!/usr/bin/env node
// Markdown table of the disassembly JSONs written by tools/lego-runs.sh: base vs
// component accuracy on the task's test images, parameters and FLOPs of both.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? 'runs/lego-full';
const pct = (x) => `${(100 * x).toFixed(2)}%`;
const compact = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : String(n));
const rows = ['| model | task | base | component | difference | parameters | MFLOPs/image |', '|---|---|---|---|---|---|---|'];
for (const model of readdirSync(dir).sort()) {
  const folder = join(dir, model);
  for (const task of ['0', '0-2', '3-9', '1_5_7']) {
    const f = join(folder, `task-${task}.json`);
    if (!existsSync(f)) continue;
    const r = JSON.parse(readFileSync(f, 'utf8'));
    const d = 100 * (r.component.accuracy - r.base.accuracy);
    rows.push(`| ${model} | {${task.replace(/_/g, ',')}} | ${pct(r.base.accuracy)} | ${pct(r.component.accuracy)} | ${d >= 0 ? '+' : ''}${d.toFixed(2)} | ${compact(r.base.parameters)} -> ${compact(r.component.parameters)} | ${(r.base.flopsPerImage / 1e6).toFixed(1)} -> ${(r.component.flopsPerImage / 1e6).toFixed(1)} |`);
  }
}
console.log(rows.join('\n'));
