/** Model stitching: cuts, stitches, stitched networks, least-squares and copy stitches, controls, grids. */
export { listCuts, allCuts, stitchCut, defaultSenders, defaultReceivers, describeShape, layoutOf, type StitchCut, type CutLayout } from './cuts.js';
export { planStitch, specKey, tokenGrid, type StitchSpec, type StitchKind, type PlanOptions, type FlatFrom, type TokenGrid } from './plan.js';
export {
  buildStitch, buildPatchModel, initialWeights, stitchParameters, stitchMaps, mapWeightShape, STITCH_IN, STITCH_OUT, MAP_WEIGHT, MAP_BIAS, CLASS_WEIGHT, CLASS_BIAS,
  type StitchInit, type StitchWeights, type StitchMap,
} from './build.js';
export { composeStitched, prefixModel, suffixModel, stitchWithSuffix, batchFirstPerm, type CutRef } from './compose.js';
export { featureViews, CKA_POOLS, type CkaPool } from './views.js';
export { LsqAccumulator, solveLsq, fitErrorOf, buildMomentsModel, type LsqMoments, type LsqSolution } from './lsq.js';
export { randomCounterpart, PAIR_KINDS, PAIR_TITLES, type PairKind } from './controls.js';
export { ActivationStore, type ImageList, type Source, type ActivationBatch } from './activations.js';
export { StitchContext, type ContextOptions } from './context.js';
export { runCell, CellSessions, DEFAULT_CELL_OPTIONS, type CellOptions, type CellResult, type StitchPair, type StitchMode } from './cell.js';
export { StitchGrid, runWorker, type GridSpec, type GridRunOptions, type GridCell } from './grid.js';
export { writeMatrix, triangleMeans, type StitchMatrix, type Measure } from './matrix.js';
export { stitchGrid, type StitchJob, type StitchJobResult } from './run.js';
export { linearCka, linearCkaFromGrams, gramMatrix, centerGram, centerGramUnbiased, hsicBiased, hsicUnbiased, prepareGram, ckaPrepared, type Gram, type CkaOptions, type CenteredGram } from './cka.js';
export { computeGrams, planPasses, DEFAULT_ACTIVATION_BYTES, type GramCut, type GramOptions, type CutGram } from './cka-grams.js';
export { computeCkaGrid, writeCkaGrid, sampleIndices, DEFAULT_CKA_SAMPLES, DEFAULT_CKA_MEMORY_MIB, type CkaNetwork, type CkaGridOptions, type CkaGridResult, type CkaCut, type CkaEstimator } from './cka-grid.js';
