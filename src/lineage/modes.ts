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
import { GramEngine, distancesFromGram, type ExactDistances } from './gram.js';
import { pairRanks } from './rank.js';
import { pairSchatten } from './spectral.js';
import type { Direction, DirectionSignal, Placement } from './forest.js';

export const LINEAGE_MODES = ['ft', 'lowrank', 'spectral'] as const;
export type LineageMode = (typeof LINEAGE_MODES)[number];

/** 'auto' picks spectral when its estimated cost is affordable and ft otherwise (measure.ts). */
export const MODE_OPTIONS = ['auto', ...LINEAGE_MODES] as const;
export type ModeOption = (typeof MODE_OPTIONS)[number];

/**
 * One selected layer of every model: n rows of `size` weights each, of shape `shape`.
 * Rules with `gram` get the layer's Gram and a way to recompute pairs exactly (measure.ts
 * reads their layers in column panels, never whole); the others get the whole stack.
 */
export interface LayerStack {
  /** the layer of every model, row after row (rules without `gram`) */
  stack?: Float32Array;
  n: number;
  size: number;
  shape: readonly number[];
  /** number of selected layers, for modes that average over them */
  layers: number;
  /** the Schatten exponent (spectral) */
  schatten: number;
  /** the layer's Gram (GramEngine blocks, summed over the panels in order; rules with `gram`) */
  gram?: Float64Array;
  /** exact squared distances of pairs of rows (rules with `gram`) */
  exact?: ExactDistances;
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
  /** the distance comes from the layer's Gram product (computed panel by panel as the layer is read, in the worker pool when there is one) */
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
    async layerDistance({ n, size, layers, gram, exact }) {
      const { d2, repaired } = distancesFromGram(gram!, n, size, exact!);
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
      return { d: pairRanks(stack!, n, shape[0]!, shape[1]!), repaired: 0 };
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
      const nuc = pairSchatten(stack!, n, shape[0]!, shape[1]!, schatten);
      return { d: nuc.map((v) => v / layers), repaired: 0 };
    },
    defaults: { signal: 'norm', direction: 'parent-lower', placement: 'rooted-mst' },
  },
};
