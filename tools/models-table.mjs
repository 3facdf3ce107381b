#!/usr/bin/env node
// Markdown rows for the base models of tools/train-models.sh: epochs and test accuracy,
// read from runs/models/<name>.json (the --json output of modelsmith train).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2] ?? 'runs/models';
for (const f of readdirSync(dir).filter((x) => x.endsWith('.json')).sort()) {
  let r;
  try { r = JSON.parse(readFileSync(join(dir, f), 'utf8')); } catch { continue; }
  if (!r.test) continue;
  console.log(`| ${f.replace(/\.json$/, '')} | ${r.epochs.length} | ${(100 * r.test.accuracy).toFixed(2)}% |`);
}
