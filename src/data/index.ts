/** The data layer: datasets, class subsets, batching. */
export type { Augmentation, Batch, BatchOptions, Dataset, ImageShape, Normalization } from './types.js';
export { openDataset, datasetLocations, samplePath, SYSTEM_DATA_ROOT, type OpenOptions, type Location } from './resolve.js';
export { parseClasses, subsetIndices, labelMap, splitTrainValidation, type TrainValidation } from './classes.js';
export { batches, batchCount, epochOrder, loadBatch, type LoadOptions } from './batches.js';
export { computeNormalization } from './stats.js';
export { DEFAULT_NORMALIZATION, defaultNormalization, FASHION_MNIST_CLASSES, MNIST_CLASSES, CIFAR10_CLASSES } from './known.js';
export { readIdx, decodeIdx, encodeIdx, type IdxArray } from './idx.js';
export { openIdxFolder, findIdxFiles, type Split, type IdxDatasetOptions } from './idx-folder.js';
export { openCifar, type CifarKind, type CifarOptions } from './cifar.js';
export { openImageFolder, decodeImage, type FolderOptions } from './folder.js';
export { ByteImageDataset, type DatasetInfo } from './memory.js';
export { padCrop, flipHorizontal, augmentBatch, normalizeBatch, broadcastNormalization } from './augment.js';
