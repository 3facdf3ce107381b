/** Lineage recovery (MoTHer): which model was fine-tuned from which, from weights alone. */
export { recoverLineage, type LineageOptions } from './recover.js';
export { buildForest, rootedMst, type Placement, type ForestOptions, type LineageForest, type ForestNode, type ForestEdge, type Direction, type DirectionSignal, type ClusterMethod } from './forest.js';
export { measureModels, type Measurements, type MeasureOptions, type LineageMode, type ModeOption, type ClusterDistance, DEFAULT_SCHATTEN, SPECTRAL_BUDGET_FLOPS, spectralCost } from './measure.js';
export {
  scoreForest, loadTruth, checkTruth, treeOf, adjustedRand, matchedFraction, signalTrends, type Truth, type LineageScore, type SignalTrend,
} from './truth.js';
export { openSources, openSource, closeSources, expandInputs, modelStem, modelName, isHfFolder, type ModelSource, type LayerInfo } from './sources.js';
export { selectLayers, all2dLayers, layerPattern, TRANSFORMER_WEIGHTS, type LayerSelection, type SelectedLayer } from './select.js';
export {
  recoveredCards, writeModelCards, cardTruth, readFolderCard, parseCardFields, cardFrontMatter, relationAgreement, resolveBaseModel,
  type RecoveredCard, type BaseModelRelation, type CardFields, type CardTruth, type DeclaredBase,
} from './model-cards.js';
export { GramEngine, squaredDistances, directSquaredDistance, meanAbsDistances, REPAIR_RATIO } from './gram.js';
export { matrixRank, matrixRankFast, singularValues, rankTolerance, pairRanks } from './rank.js';
export { excessKurtosis } from './kurtosis.js';
export { directedCost, meanAll, type KurtosisDirection } from './cost.js';
export { wardLinkage, cutTree, estimateKGap, estimateKSilhouette, silhouette, type Merge, type KEstimate } from './ward.js';
export { minArborescence, minArborescenceRooted, arborescenceCost } from './arborescence.js';
export { forestText, forestDot, writeForestFiles, dotToSvg, svgToPng } from './render.js';
export { writeSyntheticZoo, type SyntheticZooOptions, type SyntheticZoo } from './synthetic.js';
export { nuclearNorm, schattenSum, pairSchatten, symmetricEigenvalues, singularValuesFast } from './spectral.js';
export { REFERENCE_OPTIONS } from './reference.js';
