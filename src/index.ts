/**
 * modelsmith as a library: what users call, grouped by layer. Every CLI command is a thin
 * wrapper over one of these. Internals are not exported here; code inside the repository
 * (tests, benchmarks, tools) imports the modules it needs directly.
 *
 * @example
 *   import { createZooModel, saveModel, openDataset, evaluate } from 'modelsmith';
 *   const model = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.25, seed: 1 });
 *   saveModel(model, 'r.onnx');
 *   const r = await evaluate(model, await openDataset('fashion-mnist', 'test'), { mean: [0.286], std: [0.353] });
 *
 * @packageDocumentation
 */

// Models: open, save, describe, cut (ONNX graphs with modelsmith's metadata).
export type { Model, Graph, Node, Tensor, TensorData, DType, Attribute, ValueInfo, OpsetImport } from './onnx/types.js';
export type { OutputLabel, InputSpec, CutPoint, Provenance, Operation, ArchInfo } from './onnx/metadata.js';
export { openModel } from './onnx/open.js';
export { saveModel } from './onnx/proto.js';
export { modelStats, type ModelStats } from './onnx/stats.js';
export { validateModel } from './onnx/validate.js';
export { extractCut, type ExtractedCut } from './onnx/cuts.js';
export { createZooModel, ZOO_NAMES, type ZooOptions } from './nn/zoo.js';
export { describeModel, modelReportText, type ModelReport, type TensorSummary } from './report/inspect.js';

// Datasets.
export type { Dataset, Batch, Normalization, Augmentation, ImageShape } from './data/types.js';
export { openDataset, type OpenOptions } from './data/resolve.js';
export type { Split } from './data/idx-folder.js';
export { parseClasses } from './data/classes.js';
export { loadBatch, type LoadOptions } from './data/batches.js';
export { defaultNormalization } from './data/known.js';
export { computeNormalization } from './data/stats.js';

// Running and evaluating (ONNX Runtime).
export { ModelSession, type SessionOptions, type OptimizationLevel, type Feed } from './runtime/session.js';
export { evaluate, evalText, type EvalOptions, type EvalResult } from './runtime/evaluate.js';
export { inferBatches, type InferOptions, type InferResult } from './runtime/infer.js';

// Training (gradients of ONNX graphs).
export { train, trainText, type TrainJob, type TrainConfig, type TrainResult, type EpochMetrics } from './autodiff/train.js';
export type { OptimizerConfig } from './autodiff/optim.js';
export type { ScheduleConfig } from './autodiff/schedule.js';

// Model LEGO: disassemble classifiers into task components, assemble components.
export type { Component, DisassembleOptions, UnbalancedCounts, Masks, RecalibrationReport, ValidationReport, SearchReport } from './lego/types.js';
export type { RecalibrationMode } from './lego/recalibrate.js';
export type { FlattenMode } from './lego/masks.js';
export type { SampleRanking } from './lego/samples.js';
export type { ScaleResult } from './lego/scale.js';
export { disassemble } from './lego/disassemble.js';
export {
  assemble,
  type AssemblePart,
  type AssembleOptions,
  type AssembleResult,
  type AssemblyMethod,
  type OverlapMode,
  type ClassOverlap,
} from './lego/assemble.js';
export { runAssembleJob, assembleText, type AssembleJob, type AssembleJobResult, type Accuracy } from './lego/assemble-job.js';
export { runDisassembleJob, disassembleText, type DisassembleJob, type DisassembleJobResult } from './lego/disassemble-job.js';
export { finetuneAssembled, type FinetuneOptions, type FinetuneResult } from './lego/finetune.js';
export { runLegoExperiment, type ExperimentOptions, type ExperimentResult } from './lego/experiment.js';

// Lineage recovery (MoTHer) and zoos with known lineage.
export { recoverLineage, type LineageOptions } from './lineage/recover.js';
export type { LineageForest, ForestNode, ForestEdge, ForestOptions, ClusterMethod, Direction, DirectionSignal, Placement } from './lineage/forest.js';
export type { ClusterDistance } from './lineage/measure.js';
export type { LineageMode, ModeOption } from './lineage/modes.js';
export { loadTruth, scoreForest, type Truth, type LineageScore, type ScoredForest } from './lineage/truth.js';
export { forestText, writeForestFiles, type ForestFiles } from './lineage/render.js';
export { makeLineageZoo, type LineageZooResult, type ZooModelRecord } from './lineage/zoo/make.js';
export type { LineageZooOptions, VariantKind } from './lineage/zoo/options.js';
export { zooSummary, zooSummaryText, type ZooSummary } from './lineage/zoo/summary.js';

// Stitching and CKA.
export { listCuts, type StitchCut } from './stitch/cuts.js';
export { stitchGrid, type StitchJob, type StitchJobResult } from './stitch/run.js';
export type { CellOptions, StitchMode } from './stitch/cell.js';
export type { PairKind } from './stitch/controls.js';
export type { StitchMatrix } from './stitch/matrix.js';
export { computeCkaGrid, writeCkaGrid, type CkaNetwork, type CkaGridOptions, type CkaGridResult } from './stitch/cka-grid.js';
export { linearCka, type CkaOptions } from './stitch/cka.js';
export { runCkaJob, type CkaJob, type CkaJobOptions } from './stitch/cka-job.js';
export { describeCuts, cutListingText, stitchGridText, ckaGridText, type CutListing } from './stitch/tables.js';

// Reports and figures.
export { runDemo, type DemoOptions, type DemoResult } from './report/demo.js';
export { writeReport, type ReportOptions, type ReportResult } from './report/html/report.js';
export { writeHeatmaps, type HeatmapPanel, type HeatmapOptions } from './plot/heatmap.js';

// Scale-out on a Redis queue.
export { startWorker, type WorkerOptions, type RunningWorker } from './queue/worker.js';
export { queueStatus, cancelRun, clearQueue, type QueueStatus, type RunStatus } from './queue/admin.js';
export type { WorkerInfo } from './queue/coordinator.js';

// Utilities users meet.
export { UserError, OptionError, type OptionNamer } from './util/errors.js';
export { Rng } from './util/random.js';
