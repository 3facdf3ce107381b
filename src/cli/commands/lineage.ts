/**
 * `modelsmith lineage`: a thin wrapper over recoverLineage (src/lineage) that prints the
 * recovered forest, scores it against --truth (or, without it, against the models' own
 * model cards when they name a base_model), and writes forest.json/.dot/.svg/.png and
 * the Hugging Face card metadata per model (model-cards.json, model-cards/<model>.md).
 *
 * @example
 *   modelsmith lineage runs/zoo/ft-s3 --clusters 3 --truth runs/zoo/ft-s3/truth.json -o out/
 *   modelsmith lineage hub-folders/ --clusters 3 -o out/    # Hugging Face folders, scored from their cards
 */
import type { Command } from 'commander';
import { recoverLineage } from '../../lineage/recover.js';
import { loadTruth, scoreForest, signalTrends } from '../../lineage/truth.js';
import { cardTruth, recoveredCards, relationAgreement, writeModelCards } from '../../lineage/model-cards.js';
import { expandInputs, modelName } from '../../lineage/sources.js';
import { forestText, writeForestFiles } from '../../lineage/render.js';
import {
  CLUSTER_METHODS,
  DIRECTIONS,
  DIRECTION_SIGNALS,
  PLACEMENTS,
  type ClusterMethod,
  type Direction,
  type DirectionSignal,
  type Placement,
} from '../../lineage/forest.js';
import { CLUSTER_DISTANCES, type ClusterDistance } from '../../lineage/measure.js';
import { MODE_OPTIONS, type ModeOption } from '../../lineage/modes.js';
import { parseChoice, parsePositiveNumber } from '../parse.js';
import { info } from '../../util/progress.js';
import { UserError } from '../../util/errors.js';
import { pct } from '../output.js';
import { checkOutputs, globals, outputFolder, withOutputFlags } from './common.js';
import { writeRunReport } from '../../report/html/report.js';

interface LineageFlags {
  mode: ModeOption;
  layers?: string[];
  clusters?: string;
  clusterMethod: ClusterMethod;
  clusterDistance: ClusterDistance;
  lambda: string;
  direction?: Direction;
  signal?: DirectionSignal;
  placement?: Placement;
  schatten?: number;
  truth?: string;
  output: string;
}

const collect = (v: string, prev: string[] = []): string[] => [
  ...prev,
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

export function registerLineage(program: Command): void {
  withOutputFlags(
    program
      .command('lineage <inputs...>')
      .description(
        'recover the family tree of a set of models from their weights (MoTHer); inputs: .safetensors/.onnx files, folders, Hugging Face model folders, list files',
      ),
  )
    .option(
      '--mode <mode>',
      'distance: ft = mean RMS weight difference (reference); lowrank = sum of ranks of differences (reference, LoRA); spectral = mean sigma^q of differences; auto = spectral when affordable, else ft',
      parseChoice('--mode', MODE_OPTIONS),
      'auto',
    )
    .option('--schatten <q>', 'exponent q of --mode spectral, in (0, 2] (default 0.25; 1 = nuclear norm)', parsePositiveNumber('--schatten'))
    .option('--layers <pattern>', 'layers to compare: glob or /regex/ (repeatable or comma-separated; default: square 2-D weight matrices)', collect)
    .option('--clusters <K>', 'number of trees (default: estimated)')
    .option('--cluster-method <gap|silhouette>', 'how K is estimated when --clusters is omitted', parseChoice('--cluster-method', CLUSTER_METHODS), 'gap')
    .option(
      '--cluster-distance <reference|selected>',
      'Ward distance: reference = mean |dW| over all 2-D layers (ft), selected = the lineage distance',
      parseChoice('--cluster-distance', CLUSTER_DISTANCES),
      'reference',
    )
    .option('--lambda <x>', 'weight of the direction penalty (lambda x mean D per violated edge)', '0.3')
    .option(
      '--signal <kurtosis|norm>',
      'per-model quantity the direction refers to: kurtosis (reference) or norm (mean square of the weights); default norm, kurtosis for --mode lowrank',
      parseChoice('--signal', DIRECTION_SIGNALS),
    )
    .option(
      '--direction <dir>',
      'parent-higher, parent-lower (parent has the lower signal), or auto (default: parent-lower for norm; auto for kurtosis in --mode lowrank, else parent-higher)',
      parseChoice('--direction', DIRECTIONS),
    )
    .option(
      '--placement <arborescence|rooted-mst>',
      'tree per cluster: minimum arborescence of the directed cost (reference), or the distance MST rooted at the lowest-signal model (default: rooted-mst; arborescence for --mode lowrank)',
      parseChoice('--placement', PLACEMENTS),
    )
    .option(
      '--truth <file>',
      'truth.json ({"edges": [["parent", "child"], ...]}) to score against ' +
        "(default: the base_model of the models' own README.md cards, when they name one)",
    )
    .requiredOption('-o, --output <dir>', 'folder for forest.json, forest.dot, forest.svg, forest.png, model-cards.json, model-cards/')
    .action(async (inputs: string[], flags: LineageFlags, cmd: Command) => {
      const { out, session } = globals(cmd);
      checkOutputs([outputFolder(flags.output)], [...inputs, ...(flags.truth !== undefined ? [flags.truth] : [])]);
      const lambda = Number(flags.lambda);
      if (flags.lambda.trim() === '' || !Number.isFinite(lambda) || lambda < 0)
        throw new UserError(`--lambda expects a non-negative number, got "${flags.lambda}"`);
      let clusters: number | undefined;
      if (flags.clusters !== undefined) {
        clusters = Number(flags.clusters);
        if (!Number.isInteger(clusters) || clusters < 1)
          throw new UserError(`--clusters expects a positive integer (the number of trees), got "${flags.clusters}"`);
      }
      // the cards are read before the weights, so a bad card stops the run before any work
      const fromCards = flags.truth ? undefined : cardTruth(expandInputs(inputs).map((path) => ({ name: modelName(path), path })));
      if (fromCards) {
        const edges = fromCards.truth.edges.length;
        info(`lineage: truth from the models' own cards: ${fromCards.cards} README.md files name a base_model, ${edges} edges among the models`);
        for (const note of fromCards.notes) info(`lineage: ${note}`);
      }
      const forest = await recoverLineage(inputs, {
        mode: flags.mode,
        ...(flags.schatten !== undefined ? { schatten: flags.schatten } : {}),
        ...(flags.placement !== undefined ? { placement: flags.placement } : {}),
        ...(flags.signal !== undefined ? { signal: flags.signal } : {}),
        ...(flags.layers ? { layers: flags.layers } : {}),
        ...(clusters !== undefined ? { clusters } : {}),
        clusterMethod: flags.clusterMethod,
        clusterDistance: flags.clusterDistance,
        lambda,
        ...(flags.direction !== undefined ? { direction: flags.direction } : {}),
        session,
      });
      info(
        `lineage: ${forest.nodes.length} models; layers: ${forest.selection.rule}: ${forest.selection.layers.map((l) => `${l.name} [${l.shape.join('x')}]`).join(', ')}`,
      );
      const k = forest.settings.clusters;
      info(
        `lineage: ${k.k} trees${k.estimated ? ` (estimated by ${k.method})` : ''}; distance ${forest.settings.mode}${forest.settings.schatten !== null ? ` (q ${forest.settings.schatten})` : ''}; direction ${forest.settings.signal} ${forest.settings.direction}${forest.settings.direction === 'auto' ? ` (${forest.settings.directionUsed.join(', ')})` : ''}; tree ${forest.settings.placement}`,
      );
      const truth = flags.truth
        ? loadTruth(
            flags.truth,
            forest.nodes.map((n) => n.name),
          )
        : fromCards?.truth;
      const score = truth ? scoreForest(forest, truth) : undefined;
      const files = await writeForestFiles(forest, flags.output, score, truth?.edges);
      const cards = recoveredCards(forest);
      const cardFiles = writeModelCards(flags.output, cards);
      out.line(forestText(forest));
      const trends = truth ? signalTrends(forest, truth) : undefined;
      if (score) {
        const t = trends!;
        out.line(
          `along the ${t.kurtosis.edges} true edges, parent -> child: kurtosis rose on ${t.kurtosis.rose}, fell on ${t.kurtosis.fell}; ` +
            `norm rose on ${t.norm.rose}, fell on ${t.norm.fell}`,
        );
        out.line(
          `directed accuracy ${pct(score.directed)} (${score.correctEdges}/${score.trueEdges} edges), undirected ${pct(score.undirected)}, clustering ${pct(score.clustering)} (ARI ${score.ari.toFixed(3)}; ${score.predictedTrees} predicted trees, ${score.trueTrees} true)`,
        );
      }
      const relations = Object.fromEntries(['finetune', 'adapter', 'quantized'].map((r) => [r, cards.filter((c) => c.base_model_relation === r).length]));
      const agreement = relationAgreement(cards);
      const agrees = agreement.compared
        ? `; the relation agrees with the models' own records on ${agreement.agree} of ${agreement.compared} edges they confirm`
        : '';
      out.line(
        `model cards: ${Object.entries(relations)
          .map(([r, k]) => `${k} ${r}`)
          .join(', ')}${agrees}`,
      );
      const report = await writeRunReport(flags.output);
      out.line(`wrote ${files.json}, ${files.dot}, ${files.svg}, ${files.png}, ${cardFiles.json}, ${cardFiles.folder}/, ${report}`);
      out.json({
        ...forest,
        ...(score ? { score, truthFrom: flags.truth ? 'file' : 'model cards', trends } : {}),
        modelCards: { relations, agreement, cards },
        files: { ...files, cards: cardFiles.json, report },
      });
    });
}
