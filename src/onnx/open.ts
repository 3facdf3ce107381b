import type { Model } from './types.js';
import { loadModel } from './proto.js';
import { validateModel } from './validate.js';

/**
 * Loads a user's .onnx file and validates it, so that a bad model fails here with a
 * message naming the file, node and operator rather than deep inside ONNX Runtime.
 *
 * @example
 *   const model = openModel('r.onnx');   // UserError naming the file, node and operator if it is not usable
 */
export function openModel(file: string): Model {
  const model = loadModel(file);
  validateModel(model, file);
  return model;
}
