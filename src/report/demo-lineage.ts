/**
 * The demo's lineage section: a small model zoo made by really training on the shipped
 * sample, its family tree recovered from the weights alone, and the accuracy of that
 * recovery against the zoo's truth. Also `scoreZoo`, which measures recovery on any zoo
 * folder under several settings (the README's figures).
 *
 * @example
 *   const r = await runLineageDemo({ outDir: 'runs/demo/lineage' });
 *   console.log(r.full.directed, r.lowrank.directed); // fractions of true edges recovered with direction
 */
import { join } from 'node:path';
import { makeLineageZoo } from '../lineage/zoo/make.js';
import { recoverLineage, type LineageOptions } from '../lineage/recover.js';
import { REFERENCE_OPTIONS } from '../lineage/reference.js';
import { loadTruth, scoreForest, type LineageScore } from '../lineage/truth.js';
import type { SessionOptions } from '../runtime/session.js';
import { info } from '../util/progress.js';
import { pct } from '../util/format.js';
import { writeResultJson } from '../util/provenance.js';
import { writeForestFiles } from '../lineage/render.js';

export interface LineageDemoOptions extends SessionOptions {
  /** default: the shipped sample */
  data?: string;
  outDir?: string;
  seed?: number;
  /** optimiser steps per root (default 300) and per fine-tuned model (default 150) */
  rootSteps?: number;
  steps?: number;
}

export interface ZooScore extends LineageScore {
  zoo: string;
  setting: string;
  options: LineageOptions;
  seconds: number;
}

export interface LineageDemoResult {
  /** zoo folders made */
  zoos: { full: string; lowrank: string };
  models: number;
  edges: number;
  /** recovery with modelsmith's default settings and the number of trees known */
  full: ZooScore;
  lowrank: ZooScore;
  seconds: number;
}

/**
 * 2 trees x 7 models (1 + 2 + 4) of a small MLP, fine-tuned fully and with LoRA; then
 * recovered with the number of trees given. Takes seconds on a laptop CPU.
 */
export async function runLineageDemo(opts: LineageDemoOptions = {}): Promise<LineageDemoResult> {
  const start = Date.now();
  const outDir = opts.outDir ?? join('runs', 'demo', 'lineage');
  const session: SessionOptions = { ...(opts.threads ? { threads: opts.threads } : {}), ...(opts.provider ? { provider: opts.provider } : {}) };
  const common = {
    data: opts.data ?? 'fashion-mnist-sample',
    trees: 2,
    children: 2,
    depth: 2,
    hidden: [64, 64, 64],
    rootSteps: opts.rootSteps ?? 300,
    steps: opts.steps ?? 150,
    batchSize: 64,
    seed: opts.seed ?? 0,
    ...session,
  };
  const full = join(outDir, 'zoo-ft');
  const lowrank = join(outDir, 'zoo-lora');
  const made = await makeLineageZoo({ ...common, outDir: full });
  await makeLineageZoo({ ...common, outDir: lowrank, lowrank: [2, 4] });
  const ft = await scoreZoo(full, 'default, K known', { clusters: 2, session }, join(outDir, 'forest-ft'));
  const lr = await scoreZoo(lowrank, 'default, K known', { clusters: 2, session }, join(outDir, 'forest-lora'));
  const result: LineageDemoResult = {
    zoos: { full, lowrank },
    models: made.models.length,
    edges: made.edges.length,
    full: ft,
    lowrank: lr,
    seconds: (Date.now() - start) / 1000,
  };
  writeResultJson(join(outDir, 'results.json'), result);
  return result;
}

/**
 * Recovers a zoo folder's lineage with `options` and scores it against the folder's truth.json;
 * with `forestDir`, also writes the forest files there (forest.json with score and truth, .dot, .svg, .png).
 */
export async function scoreZoo(dir: string, setting: string, options: LineageOptions, forestDir?: string): Promise<ZooScore> {
  const t0 = Date.now();
  const forest = await recoverLineage([dir], options);
  const truth = loadTruth(
    join(dir, 'truth.json'),
    forest.nodes.map((n) => n.name),
  );
  const score = scoreForest(forest, truth);
  if (forestDir) await writeForestFiles(forest, forestDir, score, truth.edges);
  const { session: _, ...recorded } = options;
  const r: ZooScore = { zoo: dir, setting, options: recorded, ...score, seconds: (Date.now() - t0) / 1000 };
  info(`lineage on ${dir} (${setting}): directed ${pct(score.directed)}, undirected ${pct(score.undirected)}, clustering ${pct(score.clustering)}`);
  return r;
}

/**
 * The README's comparison on one zoo: the reference algorithm as specified (kurtosis
 * parent-higher, lambda 0.3), the same with its direction flipped, and modelsmith's
 * defaults, each with the number of trees known; and the defaults with it estimated.
 */
export async function compareOnZoo(dir: string, mode: 'ft' | 'lowrank', trees: number, session: SessionOptions = {}): Promise<ZooScore[]> {
  const reference: LineageOptions = { ...REFERENCE_OPTIONS, mode, clusters: trees };
  const settings: [string, LineageOptions][] = [
    ['reference (kurtosis parent-higher, lambda 0.3), K known', reference],
    ['reference flipped (parent-lower), K known', { ...reference, direction: 'parent-lower' }],
    ['default, K known', { clusters: trees }],
    ['default, K estimated', {}],
  ];
  const out: ZooScore[] = [];
  for (const [name, o] of settings) out.push(await scoreZoo(dir, name, { ...o, session }));
  return out;
}
