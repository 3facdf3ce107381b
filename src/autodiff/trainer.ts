/**
 * One training step at a time: holds the parameters and running statistics in typed
 * arrays, feeds them with a batch to the training graph, and returns loss, logits and
 * gradients. The epoch loop (train.ts) and stitching build on it.
 *
 * @example
 *   const t = await TrainingSession.create(model, { trainable, loss: 'cross-entropy', batchSize: 128, batchNorm: 'train' });
 *   const { loss, grads } = await t.step(batch.x, targets);
 *   optimizer.step(t.params, grads, lr);
 */
import type { Model, Tensor } from '../onnx/types.js';
import { cloneModel } from '../onnx/graph.js';
import { numel, toFloat32 } from '../onnx/tensor.js';
import { ModelSession, type Feed, type SessionOptions } from '../runtime/session.js';
import { buildTrainingGraph } from './training-graph.js';
import type { TrainingGraph, TrainingGraphSpec } from './types.js';
import { Rng, hashSeed } from '../util/random.js';

export interface StepResult {
  loss: number;
  /** [B, K] */
  logits: Float32Array;
  grads: Map<string, Float32Array>;
  inputGrads: Map<string, Float32Array>;
}

export interface TrainingSessionOptions extends Omit<TrainingGraphSpec, 'model'> {
  session?: SessionOptions;
  /** seeds the Dropout masks (one stream per step) */
  seed?: number;
}

export class TrainingSession {
  /** current parameter values (the optimiser updates these in place) */
  readonly params = new Map<string, Float32Array>();
  /** current running statistics */
  readonly state = new Map<string, Float32Array>();
  private steps = 0;

  private constructor(
    readonly forward: Model,
    readonly graph: TrainingGraph,
    private readonly session: ModelSession,
    private readonly seed: number,
  ) {
    const init = forward.graph.initializers;
    for (const p of graph.parameters) this.params.set(p, Float32Array.from(toFloat32(init.get(p)!)));
    for (const s of graph.state) this.state.set(s.name, Float32Array.from(toFloat32(init.get(s.name)!)));
  }

  static async create(model: Model, opts: TrainingSessionOptions): Promise<TrainingSession> {
    const graph = buildTrainingGraph({ ...opts, model });
    const session = await ModelSession.create(graph.model, opts.session ?? {});
    return new TrainingSession(model, graph, session, opts.seed ?? 0);
  }

  get batchSize(): number {
    return this.graph.batchSize;
  }

  /** Steps taken so far (drives the Dropout mask streams; restored on resume). */
  get stepCount(): number {
    return this.steps;
  }

  set stepCount(n: number) {
    this.steps = n;
  }

  /** Runs forward and backward on one batch; updates running statistics. */
  async step(x: Float32Array, target: BigInt64Array | Float32Array): Promise<StepResult> {
    const g = this.graph;
    const inputShape = this.forward.graph.inputs[0]!.shape!.slice(1) as number[];
    const feeds: Record<string, Feed> = {
      [g.feeds.input]: { dims: [g.batchSize, ...inputShape], data: x },
      [g.feeds.target]: target instanceof BigInt64Array ? { dtype: 'int64', dims: [g.batchSize], data: target } : { dims: this.logitsShape(), data: target },
    };
    for (const [name, v] of this.params) feeds[name] = { dims: this.forward.graph.initializers.get(name)!.dims, data: v };
    for (const s of g.state) feeds[s.input] = { dims: this.forward.graph.initializers.get(s.name)!.dims, data: this.state.get(s.name)! };
    this.addMasks(feeds);
    const out = await this.session.run(feeds);
    this.steps++;
    for (const s of g.state) this.state.get(s.name)!.set(out[s.output]!.data as Float32Array);
    const grads = new Map<string, Float32Array>();
    for (const p of g.parameters) grads.set(p, out[g.gradients[p]!]!.data as Float32Array);
    const inputGrads = new Map<string, Float32Array>();
    for (const [name, o] of Object.entries(g.inputGradients)) inputGrads.set(name, out[o]!.data as Float32Array);
    return { loss: (out[g.loss]!.data as Float32Array)[0]!, logits: out[g.logits]!.data as Float32Array, grads, inputGrads };
  }

  private logitsShape(): number[] {
    const out = this.forward.graph.outputs[0]!.shape!;
    return [this.graph.batchSize, ...(out.slice(1) as number[])];
  }

  private addMasks(feeds: Record<string, Feed>): void {
    if (!this.graph.masks.length) return;
    const rng = new Rng(hashSeed(this.seed, `dropout:${this.steps}`));
    for (const m of this.graph.masks) {
      const n = numel(m.shape);
      const keep = 1 / (1 - m.ratio);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = rng.next() < m.ratio ? 0 : keep;
      feeds[m.input] = { dims: m.shape, data };
    }
  }

  /** The forward model with the current weights and running statistics (a copy). */
  snapshot(): Model {
    const m = cloneModel(this.forward);
    const put = (name: string, v: Float32Array): void => {
      const old = m.graph.initializers.get(name)!;
      const t: Tensor = { dtype: 'float32', dims: [...old.dims], data: Float32Array.from(v) };
      m.graph.initializers.set(name, t);
    };
    for (const [k, v] of this.params) put(k, v);
    for (const [k, v] of this.state) put(k, v);
    return m;
  }

  /** Replaces parameters and running statistics (resume). */
  load(values: Map<string, Float32Array>): void {
    for (const [k, v] of [...this.params, ...this.state]) {
      const src = values.get(k);
      if (src) v.set(src);
    }
  }

  /** Stops ONNX Runtime's profiler (session option `profile`) and returns the profile file's path. */
  endProfiling(): string {
    return this.session.endProfiling();
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
