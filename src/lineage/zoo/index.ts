/** The lineage zoo maker: model families made by really training them, with their truth. */
export { makeLineageZoo, trainZooModel, type LineageZooResult, type ZooModelRecord, type ZooModelJob } from './make.js';
export { makeZooVariant, quantizeInt8, pruneL1, type VariantOptions, type VariantResult } from './variants.js';
export {
  zooSettings, treeSize, parseRanks, parseVariants, VARIANT_KINDS, LINEAGE_VIT, type LineageZooOptions, type ZooSettings, type VariantKind,
} from './options.js';
export { planZoo, taskOf, truthEdges, type PlannedModel, type ZooTask } from './plan.js';
export { addLora, mergeLora, loraTargets, classifierParams, type LoraAdapter } from './lora.js';
export { loadZooModel, readZooRecord, saveZooModel, weightsOf, ZOO_METADATA_KEY } from './store.js';
export { trainSteps, taskAccuracy } from './steps.js';
export { writeHfZoo, type HfZooOptions, type HfZooResult } from './hf.js';
