/**
 * The .safetensors format (Hugging Face): read one file or a sharded checkpoint tensor
 * by tensor, and write files atomically. Used by training checkpoints and lineage
 * recovery; the pieces live in the safetensors-*.ts modules.
 */
export { openSafetensors, type SafetensorsFile } from './safetensors-file.js';
export { openSafetensorsIndex } from './safetensors-index.js';
export { writeSafetensors, type NamedTensors } from './safetensors-write.js';
export { MAX_HEADER_BYTES, type SafetensorsDType, type TensorInfo } from './safetensors-format.js';
