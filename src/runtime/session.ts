/**
 * Sessions over ONNX Runtime. Everything that executes a model goes through here, so
 * that thread counts, optimisation level and execution provider are set in one place.
 *
 * @example
 *   const s = await ModelSession.create(loadModel('m.onnx'), { threads: 2 });
 *   const out = await s.run({ input: { dims: [1, 1, 28, 28], data: pixels } });
 *   out.logits.data // Float32Array
 */
import * as ort from 'onnxruntime-node';
import { cpus } from 'node:os';
import type { DType, Model, Tensor, TensorData } from '../onnx/types.js';
import { encodeModel } from '../onnx/proto.js';
import { UserError } from '../util/errors.js';
import { noteThreads } from '../util/provenance.js';
import { lowerConvs, nchwcBlockSize } from './nchwc.js';

export type OptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** intra-op threads (default: the number of CPU cores) */
  threads?: number;
  /** ONNX Runtime graph optimisation level (default 'all') */
  optimization?: OptimizationLevel;
  /** execution provider: 'cpu' (default), 'cuda', ... ; CPU stays as the fallback */
  provider?: string;
  /**
   * Run convolutions with run-time weights (training graphs) on ORT's blocked CPU
   * kernels (src/runtime/nchwc.ts). Default: on for the CPU provider.
   */
  nchwc?: boolean;
}

/** A value fed to or returned by a session: like Tensor, but any dtype ORT supports. */
export type Feed = Tensor | { dims: readonly number[]; data: Float32Array };

const ORT_TYPE: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32', float64: 'float64', int64: 'int64', int32: 'int32', int8: 'int8', uint8: 'uint8', bool: 'bool', float16: 'float16',
};

function toOrt(f: Feed): ort.Tensor {
  const dtype: DType = 'dtype' in f ? f.dtype : 'float32';
  const t = ORT_TYPE[dtype];
  if (!t) throw new UserError(`cannot feed a ${dtype} tensor to ONNX Runtime`);
  return new ort.Tensor(t, f.data as never, [...f.dims]);
}

function fromOrt(t: ort.Tensor): Tensor {
  const dtype = (Object.entries(ORT_TYPE).find(([, v]) => v === t.type)?.[0] ?? 'float32') as DType;
  return { dtype, dims: [...t.dims], data: t.data as TensorData };
}

export function defaultThreads(): number {
  return Math.max(1, cpus().length);
}

export class ModelSession {
  private constructor(private readonly session: ort.InferenceSession, readonly model: Model) {}

  static async create(model: Model, opts: SessionOptions = {}): Promise<ModelSession> {
    const providers = opts.provider && opts.provider !== 'cpu' ? [opts.provider, 'cpu'] : ['cpu'];
    noteThreads(opts.threads ?? defaultThreads());
    const block = providers.length === 1 && opts.nchwc !== false ? await nchwcBlockSize() : null;
    const runnable = block ? lowerConvs(model, block) : model;
    try {
      const session = await ort.InferenceSession.create(encodeModel(runnable), {
        intraOpNumThreads: opts.threads ?? defaultThreads(),
        interOpNumThreads: 1,
        graphOptimizationLevel: opts.optimization ?? 'all',
        executionProviders: providers,
        executionMode: 'sequential',
      });
      return new ModelSession(session, model);
    } catch (e) {
      throw new UserError(`ONNX Runtime could not load model ${model.graph.name}: ${firstLine(e)}`);
    }
  }

  get inputNames(): readonly string[] { return this.session.inputNames; }
  get outputNames(): readonly string[] { return this.session.outputNames; }

  /** Runs the model; `outputs` restricts which outputs are fetched (default: all). */
  async run(feeds: Record<string, Feed>, outputs?: readonly string[]): Promise<Record<string, Tensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    } catch (e) {
      throw new UserError(`running model ${this.model.graph.name} failed: ${firstLine(e)}`);
    }
    const out: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(result)) out[k] = fromOrt(v as ort.Tensor);
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0]!;
}
