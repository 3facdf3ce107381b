/**
 * The family tree of a zoo, decided before any training: who descends from whom, and
 * each model's seed, task, learning rate and LoRA rank, all drawn from the zoo's seed.
 * File names are opaque and shuffled so that nothing about the tree can be read from
 * them (or from their sort order) by a recovery algorithm.
 */
import { Rng, hashSeed } from '../../util/random.js';
import type { ZooSettings } from './options.js';
import { treeSize } from './options.js';

/**
 * What a model is trained to do: images of `classes`, image of class c trained to output
 * `outputOf[c]`. The mapping covers every class (a subset task keeps its parent's head
 * meaning for the classes it does not train), so it can be inherited further down.
 */
export interface ZooTask {
  /** all: every class, the root's mapping; subset: some classes, the parent's mapping; permutation: every class, outputs shuffled */
  kind: 'all' | 'subset' | 'permutation';
  classes: number[];
  outputOf: number[];
}

export interface PlannedModel {
  name: string;
  tree: number;
  /** child indices from the root: [] for a root, [2, 0] for the root's 3rd child's 1st child */
  path: number[];
  parent: string | null;
  seed: number;
  /** the task's class->output mapping is filled in by inheritance, in training order */
  taskKind: ZooTask['kind'];
  /** for subset tasks: the classes trained on; for permutation: the class->output permutation */
  subset?: number[];
  permutation?: number[];
  lr: number;
  steps: number;
  /** LoRA rank, null for full training */
  rank: number | null;
}

/** Models in training order (every parent before its children). */
export function planZoo(s: ZooSettings, classes: number): PlannedModel[] {
  const total = s.trees * treeSize(s.children, s.depth);
  const digits = String(total - 1).length;
  const order = new Rng(hashSeed(s.seed, 'names')).shuffle(Int32Array.from({ length: total }, (_, i) => i));
  const name = (i: number): string => `model-${String(order[i]).padStart(digits, '0')}`;
  const out: PlannedModel[] = [];
  for (let t = 0; t < s.trees; t++) {
    // breadth first, so parents come first
    const root = plan(s, classes, name(out.length), t, [], null);
    out.push(root);
    let level: PlannedModel[] = [root];
    for (let d = 1; d <= s.depth; d++) {
      const next: PlannedModel[] = [];
      for (const parent of level) {
        for (let c = 0; c < s.children; c++) {
          const m = plan(s, classes, name(out.length), t, [...parent.path, c], parent.name);
          out.push(m);
          next.push(m);
        }
      }
      level = next;
    }
  }
  return out;
}

function plan(s: ZooSettings, classes: number, name: string, tree: number, path: number[], parent: string | null): PlannedModel {
  const seed = plannedSeed(s.seed, tree, path);
  if (parent === null) return { name, tree, path, parent, seed, taskKind: 'all', lr: s.rootLr, steps: s.rootSteps, rank: null };
  const rng = new Rng(hashSeed(seed, 'plan'));
  const lora = s.lowrank !== null;
  const [lo, hi] = lora ? s.loraLr : s.fineTuneLr;
  const lr = roundLr(lo * Math.pow(hi / lo, rng.next()));
  const rank = lora ? s.lowrank![rng.int(s.lowrank!.length)]! : null;
  const base = { name, tree, path, parent, seed, lr, steps: s.steps, rank };
  if (rng.next() < 0.5 && classes > 3) {
    // 40%..80% of the classes, at least 2, never all
    const min = Math.max(2, Math.round(0.4 * classes));
    const max = Math.max(min, Math.min(classes - 1, Math.round(0.8 * classes)));
    const k = min + rng.int(max - min + 1);
    const all = Array.from({ length: classes }, (_, i) => i);
    rng.shuffle(all);
    const pick = all.slice(0, k).sort((a, b) => a - b);
    return { ...base, taskKind: 'subset', subset: pick };
  }
  const permutation = Array.from({ length: classes }, (_, i) => i);
  rng.shuffle(permutation);
  return { ...base, taskKind: 'permutation', permutation };
}

/** Four significant digits: learning rates print and compare cleanly in zoo.json. */
function roundLr(v: number): number {
  return Number(v.toPrecision(4));
}

/** The task of a planned model given its parent's class->output mapping. */
export function taskOf(m: PlannedModel, classes: number, parentOutputOf: number[] | null): ZooTask {
  const all = Array.from({ length: classes }, (_, i) => i);
  if (m.taskKind === 'all' || !parentOutputOf) return { kind: 'all', classes: all, outputOf: all };
  if (m.taskKind === 'subset') {
    return { kind: 'subset', classes: [...m.subset!], outputOf: [...parentOutputOf] };
  }
  // class c is now trained to output perm[c]
  return { kind: 'permutation', classes: all, outputOf: [...m.permutation!] };
}

/** truth.json's edges, parent first. */
export function truthEdges(models: readonly PlannedModel[]): [string, string][] {
  return models.filter((m) => m.parent !== null).map((m) => [m.parent!, m.name]);
}

/** The seed of the model at `path` in tree `tree` of a zoo with seed `zooSeed`. */
export function plannedSeed(zooSeed: number, tree: number, path: readonly number[]): number {
  return hashSeed(zooSeed, `model:${tree}:${path.join('.')}`);
}
