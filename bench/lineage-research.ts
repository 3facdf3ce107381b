/**
 * Lineage direction/placement research (issue 4): on zoos made by `modelsmith lineage-zoo`
 * (folders with truth.json), scores the reference algorithm exactly, its flipped
 * direction, and modelsmith's variants, with K known. Each zoo is measured once per
 * distance mode and layer set; the variants reuse the measurements.
 *
 *   node dist/bench/lineage-research.js runs/zoo/ft-s1 [more zoos...] [--json out.json]
 *   VARIANTS='regex' node dist/bench/lineage-research.js ...   # only the variants whose label matches
 *
 * A folder whose path contains "lora" gets the low-rank variant list.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeSources, openSources } from '../src/lineage/sources.js';
import { measureModels, type Measurements } from '../src/lineage/measure.js';
import type { LineageMode } from '../src/lineage/modes.js';
import { buildForest, type ForestOptions } from '../src/lineage/forest.js';
import { loadTruth, scoreForest, treeOf } from '../src/lineage/truth.js';
import { setQuiet } from '../src/util/progress.js';

interface Variant {
  label: string;
  mode: LineageMode;
  layers?: string[];
  schatten?: number;
  estimateK?: boolean;
  forest: ForestOptions;
}

const FT: Variant[] = [
  { label: 'reference (ft, kurtosis parent-higher, lambda 0.3)', mode: 'ft', forest: { signal: 'kurtosis', direction: 'parent-higher' } },
  { label: 'reference flipped (kurtosis parent-lower)', mode: 'ft', forest: { signal: 'kurtosis', direction: 'parent-lower' } },
  { label: 'reference, direction auto', mode: 'ft', forest: { signal: 'kurtosis', direction: 'auto' } },
  { label: 'ft distance, no direction term (lambda 0)', mode: 'ft', forest: { lambda: 0, placement: 'arborescence' } },
  { label: 'ft distance + norm direction', mode: 'ft', forest: { signal: 'norm', placement: 'arborescence' } },
  { label: 'spectral q=0.25 + kurtosis parent-higher', mode: 'spectral', schatten: 0.25, forest: { signal: 'kurtosis', direction: 'parent-higher' } },
  { label: 'spectral q=0.25, lambda 0', mode: 'spectral', schatten: 0.25, forest: { lambda: 0, placement: 'arborescence' } },
  { label: 'spectral q=0.25 + norm direction (arborescence)', mode: 'spectral', schatten: 0.25, forest: { signal: 'norm', placement: 'arborescence' } },
  { label: 'spectral q=0.25, MST rooted at the lowest norm (default)', mode: 'spectral', schatten: 0.25, forest: { signal: 'norm', placement: 'rooted-mst' } },
  { label: 'default (spectral q=0.25, rooted MST), K estimated', mode: 'spectral', schatten: 0.25, forest: {}, estimateK: true },
];

const LORA: Variant[] = [
  { label: 'reference (lowrank, kurtosis parent-higher, lambda 0.3)', mode: 'lowrank', forest: { signal: 'kurtosis', direction: 'parent-higher' } },
  { label: 'reference flipped (kurtosis parent-lower)', mode: 'lowrank', forest: { signal: 'kurtosis', direction: 'parent-lower' } },
  { label: 'lowrank + norm direction', mode: 'lowrank', forest: { signal: 'norm' } },
  { label: 'lowrank + kurtosis auto', mode: 'lowrank', forest: { signal: 'kurtosis', direction: 'auto' } },
  { label: 'spectral q=0.25, MST rooted at the lowest norm (default)', mode: 'spectral', schatten: 0.25, forest: { signal: 'norm', placement: 'rooted-mst' } },
];

async function main(): Promise<void> {
  setQuiet(true);
  const args = process.argv.slice(2);
  const jsonAt = args.indexOf('--json');
  const jsonOut = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
  const zoos = args.filter((a, i) => !a.startsWith('--') && i !== jsonAt + 1);
  const results: unknown[] = [];
  for (const zoo of zoos) {
    const lora = /lora/.test(zoo);
    const models = openSources([zoo]);
    const names = models.map((m) => m.name);
    const truth = loadTruth(join(zoo, 'truth.json'), names);
    const k = new Set(treeOf(names, truth.edges).values()).size;
    const cache = new Map<string, Measurements>();
    console.log(`\n${zoo}: ${names.length} models, ${truth.edges.length} true edges, ${k} trees`);
    const rows = [];
    const only = process.env.VARIANTS ? new RegExp(process.env.VARIANTS) : undefined;
    for (const v of (lora ? LORA : FT).filter((x) => !only || only.test(x.label))) {
      const key = `${v.mode}|${v.layers?.join(',') ?? ''}|${v.schatten ?? ''}`;
      let m = cache.get(key);
      const t0 = performance.now();
      if (!m) {
        m = await measureModels(models, { mode: v.mode, ...(v.layers ? { layers: v.layers } : {}), ...(v.schatten ? { schatten: v.schatten } : {}) });
        cache.set(key, m);
      }
      const forest = buildForest(m, { ...(v.estimateK ? {} : { clusters: k }), ...v.forest });
      const s = scoreForest(forest, truth);
      const seconds = (performance.now() - t0) / 1000;
      rows.push({ variant: v.label, directed: s.directed, undirected: s.undirected, clustering: s.clustering, k: forest.settings.clusters.k, seconds });
      console.log(
        `${v.label.padEnd(58)} directed ${(100 * s.directed).toFixed(1).padStart(5)}%  undirected ${(100 * s.undirected).toFixed(1).padStart(5)}%  clustering ${(100 * s.clustering).toFixed(1)}%  (${seconds.toFixed(1)} s)`,
      );
    }
    closeSources(models);
    results.push({ zoo, models: names.length, trees: k, rows });
  }
  if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 2) + '\n');
}

await main();
