/**
 * The data flags shared by every command that feeds images to a model: which dataset,
 * how to adapt its images to the model (size, channels), which normalisation, and which
 * class each output of an unlabelled model stands for.
 *
 * The adaptation flags are folded into the dataset spec (`--data`) before the command
 * runs (see src/data/view.ts), and a `--norm` preset into `--mean/--std`, so command code
 * and library code see one spec string and explicit numbers, and worker processes
 * re-open exactly the same view.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { Dataset } from '../data/types.js';
import { openDataset } from '../data/resolve.js';
import { parseClasses } from '../data/classes.js';
import { formatDataSpec, parseChannels, parseDataSpec, parseSize, type DataView } from '../data/view.js';
import { DEFAULT_NORMALIZATION, NORMALIZATION_PRESETS, defaultNormalization } from '../data/known.js';
import { computeNormalization } from '../data/stats.js';
import { openModel } from '../onnx/open.js';
import { parseChoice, parseNumberList } from './parse.js';
import { UserError } from '../util/errors.js';
import { info, setQuiet } from '../util/progress.js';
import { batchOption } from './options.js';

export interface DataFlags {
  data: string;
  split: string;
  classes?: string;
  mean?: number[];
  std?: number[];
  batch?: number;
}

/** What `--norm` accepts: `model` (its metadata; the default), a named preset, the dataset's own statistics, or none. */
export const NORM_CHOICES = ['model', 'imagenet', 'dataset', 'none'] as const;
export type NormChoice = (typeof NORM_CHOICES)[number];

/** The adaptation and normalisation flags as commander parses them. */
interface InputFlags {
  data?: string | string[];
  mean?: number[];
  std?: number[];
  norm?: NormChoice;
  resize?: [number, number];
  channels?: 1 | 3;
  fit?: boolean;
  labels?: string;
}

/** --data, --split, --classes, --batch and the input flags (eval, cka, ...). */
export function addDataOptions(cmd: Command, defaultSplit = 'test'): Command {
  cmd
    .requiredOption(
      '--data <spec>',
      'dataset: fashion-mnist | mnist | fashion-mnist-sample | cifar10:<dir> | cifar100:<dir> | folder:<dir> | <dir with IDX files>',
    )
    .option('--split <split>', 'train or test', defaultSplit)
    .option('--classes <list>', 'only these dataset classes, e.g. 0-2,5')
    .addOption(batchOption());
  return addInputOptions(cmd);
}

/**
 * The flags that say how images reach a model, for every command that feeds data (the
 * command declares --data itself): normalisation (--mean/--std or a --norm preset),
 * adaptation (--resize, --channels, or --fit to the model's input) and --labels for
 * models without label metadata.
 */
export function addInputOptions(cmd: Command): Command {
  return cmd
    .option('--mean <list>', "input normalisation mean, one value or one per channel (default: the model's metadata)", parseNumberList('--mean'))
    .option('--std <list>', 'input normalisation std, one value or one per channel', parseNumberList('--std'))
    .option(
      '--norm <preset>',
      "normalisation instead of --mean/--std: model (its metadata, default) | imagenet | dataset (the dataset's own statistics) | none",
      parseChoice('--norm', NORM_CHOICES),
    )
    .option('--resize <size>', "resize images to N or HxW (bilinear, antialiased when shrinking, as torchvision's Resize)", (v: string) =>
      parseSize(v, '--resize'),
    )
    .option('--channels <n>', 'convert images to 1 (grayscale) or 3 (RGB) channels', (v: string) => parseChannels(v, '--channels'))
    .option('--fit', "resize and convert images to the model's input shape (same aspect ratio only)")
    .option(
      '--labels <list|file>',
      'for a model without label metadata: the dataset class of each output, as ids (0-9, 0,2,5) or a file of class names/ids, one per line (or a JSON array)',
    )
    .hook('preAction', async (_cmd, action) => {
      await foldInputFlags(action);
    });
}

/** Opens the dataset (already adapted by the folded flags) and parses --classes. */
export async function openDataFromFlags(flags: DataFlags): Promise<{ ds: Dataset; classes?: number[] }> {
  if (flags.split !== 'train' && flags.split !== 'test') throw new UserError(`--split expects train or test, got "${flags.split}"`);
  const ds = await openDataset(flags.data, flags.split);
  return flags.classes !== undefined ? { ds, classes: parseClasses(flags.classes, ds.classes) } : { ds };
}

/**
 * Folds --resize/--channels/--fit/--labels into --data and a --norm preset into
 * --mean/--std. Runs before the command's action, so bad values are refused before any
 * work and the command sees one spec.
 */
export async function foldInputFlags(cmd: Command): Promise<void> {
  const f = cmd.opts<InputFlags>();
  const g = cmd.optsWithGlobals<{ json?: boolean; quiet?: boolean }>();
  setQuiet(!!(g.json || g.quiet)); // before anything is printed: the command's own output set-up comes later
  const specs = f.data === undefined ? [] : Array.isArray(f.data) ? f.data : [f.data];
  const adapting = f.resize !== undefined || f.channels !== undefined || f.fit || f.labels !== undefined;
  if (adapting && specs.length === 0) throw new UserError('--resize, --channels, --fit and --labels adapt the data given by --data, which is missing');
  if (f.fit && (f.resize || f.channels)) throw new UserError('--fit takes the size and channels from the model: give either --fit or --resize/--channels');
  if (f.norm && f.norm !== 'model' && (f.mean || f.std)) throw new UserError(`--norm ${f.norm} and --mean/--std both set the normalisation: give one of them`);
  if (specs.length === 0) return;

  const view: DataView = {};
  if (f.resize) view.size = f.resize;
  if (f.channels) view.channels = f.channels;
  if (f.labels !== undefined) view.labels = labelsSpec(f.labels);
  if (f.fit) Object.assign(view, await fitView(cmd, specs[0]!));
  const folded = specs.map((s) => (adapting ? formatDataSpec(s, { ...parseDataSpec(s).view, ...view }) : s));
  if (adapting) cmd.setOptionValue('data', Array.isArray(f.data) ? folded : folded[0]);

  if (f.norm && f.norm !== 'model') {
    const norm = await presetNormalization(f.norm, folded[0]!);
    cmd.setOptionValue('mean', norm.mean);
    cmd.setOptionValue('std', norm.std);
    info(`normalisation: --norm ${f.norm} (mean ${norm.mean.map((v) => v.toFixed(4)).join(',')}, std ${norm.std.map((v) => v.toFixed(4)).join(',')})`);
  }
}

/** A --labels value as the view stores it: ids as given, a file as `file:<absolute path>`. */
function labelsSpec(value: string): string {
  if (/^[\d\s,-]+$/.test(value)) return value.replace(/\s+/g, '');
  const file = resolve(value.startsWith('file:') ? value.slice('file:'.length) : value);
  if (!existsSync(file) || !statSync(file).isFile()) throw new UserError(`--labels ${value}: expected class ids (e.g. 0-9) or an existing file of class names`);
  if (file.includes(';') || file.includes('::')) throw new UserError(`--labels ${value}: the path may not contain ";" or "::"`);
  return `file:${file}`;
}

/** --fit: the view that turns the dataset's images into the first model argument's input shape. */
async function fitView(cmd: Command, spec: string): Promise<DataView> {
  const file = cmd.args.find((a) => a.endsWith('.onnx'));
  if (!file) throw new UserError("--fit adapts the images to a model's input, but this command was given no .onnx model file: use --resize/--channels");
  // the same words as the commands' own check: a mistyped path is named as such, not as a missing argument
  if (!existsSync(file)) throw new UserError(`model file not found: ${file}`);
  const input = openModel(file).graph.inputs[0]?.shape;
  const [c, h, w] = input && input.length === 4 ? input.slice(1) : [];
  if (typeof c !== 'number' || typeof h !== 'number' || typeof w !== 'number') {
    throw new UserError(`--fit: ${file} does not fix its input shape (${input ? input.join('x') : 'unknown'}); give --resize HxW and --channels`);
  }
  const ds = await openDataset(spec, 'test', { announce: false }).catch(() => openDataset(spec, 'train', { announce: false }));
  const [, h0, w0] = ds.shape;
  if (Math.abs(h / w - h0 / w0) > 1e-6) {
    throw new UserError(
      `--fit: ${file} takes ${h}x${w} images and ${ds.name} has ${h0}x${w0}: resizing would change the aspect ratio (${(w0 / h0).toFixed(2)} -> ${(w / h).toFixed(2)}); give --resize ${h}x${w} to stretch them anyway`,
    );
  }
  if (c !== 1 && c !== 3) throw new UserError(`--fit: ${file} takes ${c}-channel images; only 1 and 3 channels can be made from images`);
  return { size: [h, w], channels: c };
}

/** The mean/std of a --norm preset for images of the (adapted) dataset `spec`. */
async function presetNormalization(norm: Exclude<NormChoice, 'model'>, spec: string): Promise<{ mean: number[]; std: number[] }> {
  const ds = await openDataset(spec, 'train', { announce: false }).catch(() => openDataset(spec, 'test', { announce: false }));
  const channels = ds.shape[0];
  switch (norm) {
    case 'none':
      return { mean: [0], std: [1] };
    case 'imagenet': {
      const p = NORMALIZATION_PRESETS['imagenet']!;
      if (channels !== 3) throw new UserError(`--norm imagenet is for 3-channel images; ${ds.name} gives ${channels} (add --channels 3 or --fit)`);
      return { mean: [...p.mean], std: [...p.std] };
    }
    case 'dataset': {
      if (DEFAULT_NORMALIZATION[ds.name.replace(/-sample$/, '')]) return defaultNormalization(ds.name, channels);
      // a dataset without published statistics: measure them on (up to) 10,000 training images, evenly spaced
      const n = Math.min(ds.size, 10_000);
      const indices = Array.from({ length: n }, (_, i) => Math.floor((i * ds.size) / n));
      return computeNormalization(ds, indices);
    }
  }
}
