/** Model LEGO: disassembly of classifiers into task components (and, appended below, assembly). */
export * from './types.js';
export { analyzeChannels, maskOf, demand, indicesOf, findSpace, refSize, type ChannelGraph, type ChannelRef, type Layer, type ConvGeometry, type Space, type SpaceMasks } from './channels.js';
export { selectSamples, sampleCounts, softmaxProb, BoundedHeap, type SampleOptions, type SampleSelection, type SampleRanking, type Scored } from './samples.js';
export { accumulateContributions, windowSums, convPlan, addConvContributions, addLinearContributions, maskedLayers, type LayerContributions, type ContributionOptions, type ConvPlan } from './contributions.js';
export { computeMasks, layerInputMask, type MaskInput, type MaskResult, type FlattenMode } from './masks.js';
export { pruneModel, maskedOriginal, sliceAxis } from './prune.js';
export { disassemble, planDisassembly, masksAt, scaledThresholds, heldOutSplit, changedLayers, resolveThresholds, taskOutputs, saveMasks, type DisassemblyPlan } from './disassemble.js';
export { layerOutputStatistics, recalibrateAffine, RECALIBRATION_MODES, type RecalibrationMode, type RecalibrationTarget, type RecalibratedLayer, type ChannelStatistics, type AffineRecalibration } from './recalibrate.js';
export { scoreTask, mismatch, type TaskScore, type ClassAccuracy, type Mismatch, type ScoreOptions } from './score.js';
export { computeScales, applyScales, findLastLinear, pickIndices, type ScaleOptions, type ScaleResult, type Unscaled, type LastLayer } from './scale.js';
export { mergeBlockDiagonal, canonical, type Segment, type BlockDiagonalResult } from './blockdiag.js';
export { mergeParallel, type InputAdapter } from './parallel.js';
export { assemble, componentLabels, findOverlaps, MERGE_MATRIX, type AssemblePart, type AssembleOptions, type AssembleResult, type AssemblyMethod, type OverlapMode, type ClassOverlap } from './assemble.js';
export { finetuneAssembled, UnionDataset, type FinetuneOptions, type FinetuneResult } from './finetune.js';
export { runAssembleJob, scoreByDataset, type AssembleJob, type AssembleJobResult, type Accuracy } from './assemble-job.js';
export { runLegoExperiment, experimentMarkdown, DEFAULT_TASKS, DEFAULT_PAIRS, DEFAULT_SWEEP, type ExperimentOptions, type ExperimentResult } from './experiment.js';
