/**
 * Everything the cells of one stitching grid share: the four networks (trained A and B,
 * their random counterparts), the training and test image lists, the activation store
 * and the session caches. One context lives per worker process.
 */
import type { Model } from '../onnx/types.js';
import type { Dataset } from '../data/types.js';
import { subsetIndices } from '../data/classes.js';
import { resolveNormalization } from '../runtime/normalization.js';
import { checkInputShape } from '../runtime/infer.js';
import { resolveTargets } from '../autodiff/targets.js';
import type { SessionOptions } from '../runtime/session.js';
import { Rng, hashSeed } from '../util/random.js';
import { UserError } from '../util/errors.js';
import { ActivationStore, type ImageList, type Source } from './activations.js';
import { controlSeed, randomControl, type PairKind, type RandomBatchNorm } from './controls.js';

export interface ContextOptions {
  a: Model;
  b: Model;
  aFile?: string;
  bFile?: string;
  train: Dataset;
  test: Dataset;
  /** use at most this many training / test images (a seeded class-balanced-in-expectation subset) */
  trainLimit?: number;
  testLimit?: number;
  mean?: number[];
  std?: number[];
  /** cap on cached activations in MiB (default 1024) */
  cacheMb?: number;
  session?: SessionOptions;
  seed?: number;
  /** BatchNorm statistics of the random networks (default 'data': re-estimated on training images) */
  randomBatchNorm?: RandomBatchNorm;
}

/** Which network sends in a pair kind: A, or its random counterpart A0. */
const senderId = (kind: PairKind): 'A' | 'A0' => (kind === 'random-sender' || kind === 'random-both' ? 'A0' : 'A');
/** Which network receives: B, or its random counterpart B0. */
const receiverId = (kind: PairKind): 'B' | 'B0' => (kind === 'random-receiver' || kind === 'random-both' ? 'B0' : 'B');

export class StitchContext {
  readonly store: ActivationStore;
  readonly train: ImageList;
  readonly test: ImageList;
  /** dataset label -> receiver output index (-1: not scored) */
  readonly outputOf: Int32Array;
  private readonly sources = new Map<string, Source>();
  /** the options of every session the cells open (stitchSessionOptions) */
  readonly session: SessionOptions;

  constructor(readonly opts: ContextOptions) {
    const aFile = opts.aFile ?? 'model A',
      bFile = opts.bFile ?? 'model B';
    checkSameInput(opts.a, opts.b, aFile, bFile);
    checkInputShape(opts.a, opts.train, aFile);
    checkInputShape(opts.b, opts.train, bFile);
    const targets = resolveTargets(opts.b, opts.train, undefined, bFile);
    this.outputOf = targets.outputOf;
    const seed = opts.seed ?? 0;
    this.train = imageList(opts.train, targets.classes, opts.trainLimit, hashSeed(seed, 'train-subset'), 'train');
    this.test = imageList(opts.test, targets.classes, opts.testLimit, hashSeed(seed, 'test-subset'), 'test');
    this.session = stitchSessionOptions(opts.session);
    this.store = new ActivationStore({ cacheBytes: (opts.cacheMb ?? 1024) * 2 ** 20, session: this.session });
  }

  /** The sender network of a pair kind: A, or its random counterpart. */
  sender(kind: PairKind): Source {
    return this.source(senderId(kind));
  }

  receiver(kind: PairKind): Source {
    return this.source(receiverId(kind));
  }

  /** 'A', 'B', or their random counterparts 'A0', 'B0' (made by prepare). */
  source(id: 'A' | 'B' | 'A0' | 'B0'): Source {
    let s = this.sources.get(id);
    if (!s) {
      if (id.endsWith('0')) throw new Error(`random network ${id} was not prepared (call StitchContext.prepare first)`);
      const model = id === 'A' ? this.opts.a : this.opts.b;
      s = { id, model, normalization: this.normalization(model) };
      this.sources.set(id, s);
    }
    return s;
  }

  /**
   * Makes the random networks the given kinds need (seeded; BatchNorm statistics per
   * opts.randomBatchNorm, estimated on the full training split, not the limited list).
   */
  async prepare(kinds: readonly PairKind[]): Promise<void> {
    const seed = this.opts.seed ?? 0;
    const need = new Set(kinds.flatMap((k) => [senderId(k), receiverId(k)]).filter((id) => id.endsWith('0')));
    for (const id of need) {
      if (this.sources.has(id)) continue;
      const base = id === 'A0' ? this.opts.a : this.opts.b;
      const normalization = this.normalization(base);
      const model = await randomControl(base, controlSeed(seed, id === 'A0' ? 'sender' : 'receiver'), this.opts.train, {
        batchNorm: this.opts.randomBatchNorm ?? 'data',
        normalization,
        session: this.session,
      });
      this.sources.set(id, { id, model, normalization });
    }
  }

  private normalization(model: Model): Source['normalization'] {
    const ds = this.opts.train;
    const explicit = { ...(this.opts.mean ? { mean: this.opts.mean } : {}), ...(this.opts.std ? { std: this.opts.std } : {}) };
    return resolveNormalization(model, ds.shape[0], explicit, { fallback: 'dataset', dataset: ds.name }).normalization;
  }

  async release(): Promise<void> {
    await this.store.release();
  }
}

/**
 * The grid's sessions run without ONNX Runtime's memory pattern (unless asked for): with
 * it, a session keeps a planned block for its batch shape on top of the arena that its
 * first run grew, about doubling what every live session holds (ConvNeXt-Tiny at 64x64,
 * batch 256: 0.87 vs 0.52 GB for a stitch into the stem); the arena alone reuses the
 * same buffers from batch to batch, and runs and training steps took no longer without
 * it (measured; docs/pending/wp-stitchmem.md). The arena stays on: without it every
 * batch maps and zeroes its buffers afresh, twice the CPU time on ConvNeXt-Tiny.
 */
export function stitchSessionOptions(session: SessionOptions = {}): SessionOptions {
  return { ...session, memPattern: session.memPattern ?? false };
}

function imageList(ds: Dataset, classes: number[], limit: number | undefined, seed: number, name: string): ImageList {
  let idx = subsetIndices(ds, classes);
  if (limit !== undefined) {
    if (!Number.isInteger(limit) || limit < 1) throw new UserError(`${name} image limit must be a positive integer, got ${limit}`);
    if (limit < idx.length) {
      const order = Int32Array.from(idx);
      new Rng(seed).shuffle(order);
      idx = Array.from(order.subarray(0, limit)).sort((x, y) => x - y);
    }
  }
  if (!idx.length) throw new UserError(`no ${ds.split} images of the receiver's classes in ${ds.source}`);
  return { ds, indices: Int32Array.from(idx), name };
}

function checkSameInput(a: Model, b: Model, aFile: string, bFile: string): void {
  const sa = a.graph.inputs[0]?.shape?.slice(1),
    sb = b.graph.inputs[0]?.shape?.slice(1);
  if (!sa || !sb) return;
  if (sa.length !== sb.length || sa.some((d, i) => typeof d === 'number' && typeof sb[i] === 'number' && d !== sb[i])) {
    throw new UserError(
      `${aFile} takes inputs of shape ${sa.join('x')} but ${bFile} takes ${sb.join('x')}; stitching needs both networks to see the same images`,
    );
  }
}
