/** A lineage zoo run in brief: what `modelsmith lineage-zoo` prints, for a TypeScript caller alike. */
import { pct } from '../../util/format.js';
import type { LineageZooResult } from './make.js';

/** A zoo run's counts and its models' test accuracies (each on its own task), without the per-model records. */
export interface ZooSummary extends Pick<LineageZooResult, 'outDir' | 'settings' | 'trained' | 'reused' | 'seconds' | 'variants' | 'hf'> {
  models: number;
  edges: number;
  meanTestAccuracy: number;
  minTestAccuracy: number;
}

/**
 * The summary of a zoo run: how many models and edges, and the mean and lowest test
 * accuracy of the models on their tasks.
 *
 * @example
 *   const s = zooSummary(await makeLineageZoo({ data: 'fashion-mnist', outDir: 'zoo' }));
 *   console.log(s.models, s.meanTestAccuracy);
 */
export function zooSummary(r: LineageZooResult): ZooSummary {
  const accs = r.models.map((m) => m.testAccuracy);
  return {
    outDir: r.outDir,
    settings: r.settings,
    models: r.models.length,
    trained: r.trained,
    reused: r.reused,
    edges: r.edges.length,
    meanTestAccuracy: accs.reduce((a, b) => a + b, 0) / accs.length,
    minTestAccuracy: Math.min(...accs),
    seconds: r.seconds,
    variants: r.variants,
    ...(r.hf ? { hf: r.hf } : {}),
  };
}

/**
 * The summary as text: counts, accuracies and where the copies went.
 *
 * @example console.log(zooSummaryText(zooSummary(r)));
 */
export function zooSummaryText(s: ZooSummary): string {
  return [
    `${s.models} models in ${s.settings.trees} trees (${s.trained} trained, ${s.reused} found), ${s.edges} edges in ${s.outDir}/truth.json; mean test accuracy on each model's task ${pct(s.meanTestAccuracy)} (min ${pct(s.minTestAccuracy)}); ${s.seconds.toFixed(1)} s`,
    ...s.variants.map((v) => `${v.kind} copy: ${v.dir}`),
    ...(s.hf ? [`Hugging Face folders: ${s.hf.dir}${s.hf.sharded ? ` (${s.hf.sharded} sharded)` : ''}`] : []),
  ].join('\n');
}
