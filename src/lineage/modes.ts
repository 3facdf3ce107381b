/**
 * The lineage distance modes, one entry each: how a layer's pairwise distances are
 * measured, what the mode needs (2-D layers, the ONNX Runtime Gram engine, the
 * reference clustering distance) and the forest defaults it was tuned with. measure.ts
 * and forest.ts read this table instead of branching on the mode name.
 *
 * @example
 *   MODES.lowrank.defaults.placement   // 'arborescence'
 */
import type { SessionOptions } from '../runtime/session.js';
import { GramEngine, distancesFromGram } from './gram.js';
import { pairRanks } from './rank.js';
import { pairSchatten } from './spectral.js';
import type { Direction, DirectionSignal, Placement } from './forest.js';

export const LINEAGE_MODES = ['ft', 'lowrank', 'spectral'] as const;
export type LineageMode = (typeof LINEAGE_MODES)[number];

/** 'auto' picks spectral when its estimated cost is affordable and ft otherwise (measure.ts). */
export const MODE_OPTIONS = ['auto', ...LINEAGE_MODES] as const;
export type ModeOption = (typeof MODE_OPTIONS)[number];

/** One selected layer of every model, stacked: n rows of `size` weights each, of shape `shape`. */
export interface LayerStack {
  stack: Float32Array;
  n: number;
  size: number;
  shape: readonly number[];
  /** number of selected layers, for modes that average over them */
  layers: number;
  /** the Schatten exponent (spectral) */
  schatten: number;
  /** the layer's Gram (GramEngine.gram), when measure.ts had it computed alongside the reading (rules with `gram`) */
  gram?: Float64Array;
}

/** What a mode needs while measuring, made once per measurement. */
export interface ModeResources {
  engine?: GramEngine;
  release(): Promise<void>;
}

export interface LineageModeRule {
  /** what the distance is, for help and reports */
  distance: string;
  /** compares weight matrices, so every selected layer must be 2-D */
  matrices: boolean;
  /** the Schatten exponent applies */
  schatten: boolean;
  /** the distance comes from the layer's Gram product, which the worker pool can compute while the layer is read */
  gram: boolean;
  /** Ward clustering may use the reference distance (mean |dW| over all 2-D layers); low-rank zoos always cluster on the mode's own distance */
  referenceClustering: boolean;
  resources(session?: SessionOptions): Promise<ModeResources>;
  /** this layer's term of the n x n distance (added up over the selected layers), and the pairs repaired exactly */
  layerDistance(layer: LayerStack, resources: ModeResources): Promise<{ d: ArrayLike<number>; repaired: number }>;
  /**
   * Forest defaults for options left out: the direction signal, the direction that goes with it when the signal
   * is also left out, and the tree placement. Chosen on runs/zoo/ft-s1 and lora-s1 and kept because they also won on
   * the zoos not tuned on (ft-s2, ft-s3, ft-105-s4; lora-s2): see bench/lineage-research.ts.
   */
  defaults: { signal: DirectionSignal; direction: Direction; placement: Placement };
}

const noResources: ModeResources = { release: async () => {} };

export const MODES: Readonly<Record<LineageMode, LineageModeRule>> = {
  ft: {
    distance: 'mean RMS weight difference (the reference)',
    matrices: false,
    schatten: false,
    gram: true,
    referenceClustering: true,
    async resources(session) {
      const engine = await GramEngine.create(session);
      return { engine, release: () => engine.release() };
    },
    async layerDistance({ stack, n, size, layers, gram }, { engine }) {
      const { d2, repaired } = distancesFromGram(gram ?? (await engine!.gram(stack, n, size)), stack, n, size);
      return { d: Float64Array.from(d2, (v) => Math.sqrt(v / size) / layers), repaired };
    },
    // norm grew from parent to child on 58 of 60 edges of both full fine-tuning zoos
    defaults: { signal: 'norm', direction: 'parent-lower', placement: 'rooted-mst' },
  },
  lowrank: {
    distance: 'sum of the ranks of the weight differences (the reference, LoRA)',
    matrices: true,
    schatten: false,
    gram: false,
    referenceClustering: false,
    resources: async () => noResources,
    async layerDistance({ stack, n, shape }) {
      return { d: pairRanks(stack, n, shape[0]!, shape[1]!), repaired: 0 };
    },
    // on LoRA zoos neither signal is reliable, so low-rank mode keeps the reference's kurtosis, direction per cluster
    defaults: { signal: 'kurtosis', direction: 'auto', placement: 'arborescence' },
  },
  spectral: {
    distance: 'mean sigma^q of the weight differences',
    matrices: true,
    schatten: true,
    gram: false,
    referenceClustering: true,
    resources: async () => noResources,
    async layerDistance({ stack, n, shape, layers, schatten }) {
      const nuc = pairSchatten(stack, n, shape[0]!, shape[1]!, schatten);
      return { d: nuc.map((v) => v / layers), repaired: 0 };
    },
    defaults: { signal: 'norm', direction: 'parent-lower', placement: 'rooted-mst' },
  },
};
