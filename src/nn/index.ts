/** The nn layer: a graph builder, seeded initialisation and the model zoo. */
export * from './builder.js';
export * from './init.js';
export * from '../onnx/parameters.js';
export { ZOO, ZOO_NAMES, createZooModel, type ZooEntry, type ZooOptions } from './zoo.js';
export { VIT_DEFAULTS, vitParameterCount, type VitShape } from './arch/vit.js';
