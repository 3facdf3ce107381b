/**
 * The library entry point of lineage recovery (MoTHer): model files in, forest out.
 *
 * @example
 *   import { recoverLineage, scoreForest, loadTruth } from 'modelsmith';
 *   const forest = await recoverLineage(['zoo/'], { mode: 'ft', clusters: 3 });
 *   forest.edges;     // [{ parent, child, cost, distance }, ...]
 *   const score = scoreForest(forest, loadTruth('zoo/truth.json', forest.nodes.map((n) => n.name)));
 *   score.directed;   // fraction of true edges recovered with the right direction
 */
import { buildForest, type ForestOptions, type LineageForest } from './forest.js';
import { measureModels, type MeasureOptions } from './measure.js';
import { closeSources, openSources } from './sources.js';

export interface LineageOptions extends MeasureOptions, ForestOptions {}

/**
 * Reads the models layer by layer, measures them and builds the forest.
 *
 * @example
 *   const forest = await recoverLineage(['zoo/models'], { mode: 'auto' });
 *   console.log(forestText(forest));
 */
export async function recoverLineage(inputs: readonly string[], options: LineageOptions = {}): Promise<LineageForest> {
  const models = openSources(inputs);
  try {
    const m = await measureModels(models, options);
    return buildForest(m, options);
  } finally {
    closeSources(models);
  }
}
