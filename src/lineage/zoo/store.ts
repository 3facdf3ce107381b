/**
 * A zoo model on disk: its weights as one .safetensors file (names as the graph's
 * initializers, Linear weights in the graph's [out, in] layout, as PyTorch's state_dict)
 * and the model's zoo record in the file's `__metadata__`, so that a file alone says
 * what it is and a resumed run can rebuild zoo.json from the files it finds.
 */
import type { Model, Tensor } from '../../onnx/types.js';
import { cloneModel } from '../../onnx/graph.js';
import { writeSafetensors, openSafetensors } from '../../io/safetensors.js';
import { UserError } from '../../util/errors.js';

export const ZOO_METADATA_KEY = 'modelsmith.zoo';

const FLOAT_TYPES = new Set(['float32', 'float64', 'float16', 'bfloat16']);

/** The model's floating-point initializers (weights, biases, running statistics), by name. */
export function weightsOf(model: Model): [string, Tensor][] {
  return [...model.graph.initializers].filter(([, t]) => FLOAT_TYPES.has(t.dtype));
}

export function saveZooModel(path: string, model: Model, record: object): void {
  writeSafetensors(path, weightsOf(model), { [ZOO_METADATA_KEY]: JSON.stringify(record) });
}

/**
 * The architecture `template` with the weights of `path` (every floating-point
 * initializer must be there with the same shape), and the file's zoo record.
 */
export function loadZooModel<R>(path: string, template: Model): { model: Model; record: R } {
  const f = openSafetensors(path);
  try {
    const raw = f.metadata[ZOO_METADATA_KEY];
    if (raw === undefined) throw new UserError(`${path} has no "${ZOO_METADATA_KEY}" metadata: it was not written by lineage-zoo; move it away or delete it`);
    let record: R;
    try {
      record = JSON.parse(raw) as R;
    } catch {
      throw new UserError(`${path}: metadata "${ZOO_METADATA_KEY}" is not valid JSON`);
    }
    const m = cloneModel(template);
    for (const [name, t] of weightsOf(template)) {
      if (!f.has(name)) throw new UserError(`${path} has no tensor "${name}" (expected the weights of a ${template.graph.name} zoo model)`);
      const info = f.info(name);
      if (info.shape.join('x') !== t.dims.join('x'))
        throw new UserError(`${path}: tensor "${name}" has shape [${info.shape.join(', ')}], expected [${t.dims.join(', ')}]`);
      const v = f.readFloat32(name);
      m.graph.initializers.set(name, { dtype: 'float32', dims: [...t.dims], data: Float32Array.from(v) });
    }
    return { model: m, record };
  } finally {
    f.close();
  }
}

/** The zoo record of a file, or undefined when it is not a readable zoo model. */
export function readZooRecord<R>(path: string): R | undefined {
  try {
    const f = openSafetensors(path);
    try {
      const raw = f.metadata[ZOO_METADATA_KEY];
      return raw === undefined ? undefined : (JSON.parse(raw) as R);
    } finally {
      f.close();
    }
  } catch {
    return undefined;
  }
}
