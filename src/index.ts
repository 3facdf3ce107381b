/**
 * modelsmith as a library. Every CLI command is a thin wrapper over one of these.
 *
 * @example
 *   import { createZooModel, saveModel, openDataset, evaluate } from 'modelsmith';
 *   const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.25, seed: 1 });
 *   saveModel(model, 'r.onnx');
 *   const r = await evaluate(model, await openDataset('fashion-mnist', 'test'), { mean: [0.286], std: [0.353] });
 */
export type * from './onnx/types.js';
export * from './onnx/tensor.js';
export * from './onnx/graph.js';
export { loadModel, saveModel, encodeModel, decodeModel } from './onnx/proto.js';
export { openModel } from './onnx/open.js';
export * from './onnx/metadata.js';
export * from './onnx/parameters.js';
export { inferShapes, annotateShapes } from './onnx/shapes.js';
export { foldConstants } from './onnx/fold.js';
export { extractSubgraph, addOutputs } from './onnx/extract.js';
export { prefixNames, mergeGraphs } from './onnx/merge.js';
export { validateModel, SUPPORTED_OPS } from './onnx/validate.js';
export { modelStats } from './onnx/stats.js';
export { cutPoints, resolveCut, validCutTensors, extractCut, detachShapeReads } from './onnx/cuts.js';
export { dataFlow, cutProblem, checkCut, batchLayouts, type DataFlow, type BatchLayout } from './onnx/dominators.js';
export { blockCuts, type FoundCut } from './onnx/blocks.js';

export { ModelSession, type SessionOptions, type OptimizationLevel } from './runtime/session.js';
export { inferBatches, type InferOptions, type InferResult } from './runtime/infer.js';
export { evaluate, type EvalOptions, type EvalResult } from './runtime/evaluate.js';
export { mapOutputs, type OutputMap } from './runtime/labels.js';
export { resolveNormalization } from './runtime/normalization.js';

export * from './nn/index.js';
export * from './data/index.js';

export { describeModel, type ModelReport } from './report/inspect.js';
export { runDemo, type DemoOptions, type DemoResult } from './report/demo.js';
export { UserError } from './util/errors.js';
export { Rng } from './util/random.js';

export { train, type TrainJob, type TrainConfig, type TrainResult, type EpochMetrics } from './autodiff/train.js';
export { TrainingSession, type StepResult } from './autodiff/trainer.js';
export { buildTrainingGraph } from './autodiff/training-graph.js';
export type { TrainingGraph, TrainingGraphSpec, GradRule, GradContext, Loss } from './autodiff/types.js';
export { createOptimizer, type Optimizer, type OptimizerConfig } from './autodiff/optim.js';
export { createSchedule, type ScheduleConfig } from './autodiff/schedule.js';
export { clipGradNorm } from './autodiff/clip.js';
export { saveCheckpoint, loadCheckpoint, type TrainingCheckpoint } from './autodiff/checkpoint.js';
export { selectTrainable } from './autodiff/freeze.js';
export { openSafetensors, openSafetensorsIndex, writeSafetensors, type SafetensorsFile } from './io/safetensors.js';
export * from './stitch/index.js';
export { renderHeatmaps, writeHeatmaps, systemFontsAvailable, type HeatmapPanel, type HeatmapOptions } from './plot/heatmap.js';
export {
  makeLineageZoo, makeZooVariant, addLora, mergeLora, loraTargets, trainZooModel, writeHfZoo,
  type ZooModelJob, type LineageZooOptions, type LineageZooResult, type ZooModelRecord, type ZooTask, type VariantKind, type LoraAdapter,
} from './lineage/zoo/index.js';
export { runLineageDemo, scoreZoo, compareOnZoo, type LineageDemoOptions, type LineageDemoResult, type ZooScore } from './report/demo-lineage.js';
export * from './lineage/index.js';
export * from './lego/index.js';
export { runLegoDemo, legoDemoMarkdown, type LegoDemoOptions, type LegoDemoResult } from './report/demo-lego.js';
export * from './report/html/index.js';
export { provenance, withProvenance, writeResultJson, type Provenance } from './util/provenance.js';
export * from './queue/index.js';
