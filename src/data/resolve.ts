/**
 * Turns a dataset spec (`--data`) into a Dataset and says which files it used:
 *   fashion-mnist | mnist        $MODELSMITH_DATA/<name>/, then /usr/share/datasets/<name>/
 *                                (Debian packages), then the sample shipped in data/sample/
 *   fashion-mnist-sample         the shipped sample only (deterministic tests and demos)
 *   cifar10[:<path>] | cifar100[:<path>]   binary release; without a path, searched like the above
 *   folder:<path>                image folders, one subfolder per class
 *   idx:<path> | <path>          a folder of IDX files (a plain path is also probed for
 *                                CIFAR files and class folders)
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { OptionError, UserError } from '../util/errors.js';
import { packagePath } from '../util/paths.js';
import { info } from '../util/progress.js';
import { noteData } from '../util/provenance.js';
import type { Dataset, ImageShape } from './types.js';
import { findIdxFiles, expectedIdxFiles, openIdxFolder, type Split } from './idx-folder.js';
import { findCifarFolder, openCifar, type CifarKind } from './cifar.js';
import { openImageFolder } from './folder.js';
import { FASHION_MNIST_CLASSES, MNIST_CLASSES } from './known.js';
import { applyView, parseDataSpec } from './view.js';

export interface OpenOptions {
  /** class count of a plain IDX folder (default: largest label + 1) */
  classes?: number;
  /** [C, H, W] for image folders (default: inferred from the images) */
  shape?: ImageShape;
  /** CIFAR-100: fine (100 classes, default) or coarse (20) labels */
  cifar100Labels?: 'fine' | 'coarse';
  /** print the dataset's source line to stderr (default true; silenced by --quiet) */
  announce?: boolean;
}

interface IdxKind {
  classNames: readonly string[];
  /** the Debian package that installs it under /usr/share/datasets, if there is one */
  debianPackage?: string;
}

const IDX_DATASETS: Record<string, IdxKind> = {
  'fashion-mnist': { classNames: FASHION_MNIST_CLASSES, debianPackage: 'dataset-fashion-mnist' },
  mnist: { classNames: MNIST_CLASSES },
};

export const SYSTEM_DATA_ROOT = '/usr/share/datasets';

export interface Location {
  dir: string;
  /** how the source line names it */
  origin: string;
}

/** Where a named dataset is looked for, in order (the shipped sample not included). */
export function datasetLocations(name: string): Location[] {
  const out: Location[] = [];
  const env = process.env['MODELSMITH_DATA'];
  if (env) out.push({ dir: resolve(env, name), origin: `from ${resolve(env, name)} ($MODELSMITH_DATA)` });
  const pkg = IDX_DATASETS[name]?.debianPackage;
  const sys = join(SYSTEM_DATA_ROOT, name);
  out.push({ dir: sys, origin: `from ${sys}${pkg ? ` (Debian package ${pkg})` : ''}` });
  return out;
}

export function samplePath(name: string): string {
  return packagePath('data', 'sample', name);
}

/**
 * Opens a dataset by spec. A spec may end in a view (`::resize=64x64;channels=3`, see
 * view.ts), which adapts the images to a model and travels with the spec everywhere.
 *
 * @example
 *   const test = await openDataset('fashion-mnist', 'test');   // prints which files were used
 *   const big = await openDataset('fashion-mnist-sample::resize=64x64;channels=3', 'train');
 */
export async function openDataset(spec: string, split: Split, opts: OpenOptions = {}): Promise<Dataset> {
  if (split !== 'train' && split !== 'test') throw new UserError(`split "${String(split)}" is not valid: expected train or test`);
  const { base, view } = parseDataSpec(spec.trim());
  const ds = applyView(await open(base.trim(), split, opts), view);
  if (opts.announce ?? true) info(ds.source);
  noteData(ds.source);
  return ds;
}

async function open(spec: string, split: Split, opts: OpenOptions): Promise<Dataset> {
  if (spec === '') throw new OptionError((o) => `${o('data')} is empty: expected a dataset name (fashion-mnist, mnist) or a path`);
  if (IDX_DATASETS[spec]) return openNamedIdx(spec, split, opts);
  if (spec.endsWith('-sample') && IDX_DATASETS[spec.slice(0, -'-sample'.length)]) {
    return openSample(spec.slice(0, -'-sample'.length), split, false);
  }
  const colon = spec.indexOf(':');
  const prefix = colon > 0 ? spec.slice(0, colon) : spec;
  const path = colon > 0 ? resolve(spec.slice(colon + 1)) : undefined;
  switch (prefix) {
    case 'cifar10':
    case 'cifar100':
      return openCifar(prefix, path ?? findNamed(prefix), split, cifarOptions(prefix, opts));
    case 'folder':
      return openImageFolder(requirePath(spec, path), split, opts.shape ? { shape: opts.shape } : {});
    case 'idx':
      return openIdxPath(requirePath(spec, path), split, opts);
  }
  return openPlainPath(resolve(spec), spec, split, opts);
}

function requirePath(spec: string, path: string | undefined): string {
  if (!path || path === resolve('')) throw new OptionError((o) => `${o('data', spec)}: expected a folder after the colon`);
  return path;
}

function cifarOptions(kind: CifarKind, opts: OpenOptions): { labels?: 'fine' | 'coarse' } {
  return kind === 'cifar100' && opts.cifar100Labels ? { labels: opts.cifar100Labels } : {};
}

/** A dataset given by name only: the first search location that exists. */
function findNamed(name: string): string {
  const found = datasetLocations(name).find((l) => existsSync(l.dir));
  if (found) return found.dir;
  const where = datasetLocations(name).map((l) => l.dir).join(', ');
  throw new UserError(`${name} was not found (looked in ${where}): give its folder as ${name}:<path> or set $MODELSMITH_DATA`);
}

async function openNamedIdx(name: string, split: Split, opts: OpenOptions): Promise<Dataset> {
  const kind = IDX_DATASETS[name]!;
  for (const loc of datasetLocations(name)) {
    if (!existsSync(loc.dir)) continue;
    if (!findIdxFiles(loc.dir, split)) {
      throw new UserError(`${loc.dir}: no ${name} ${split} split here: expected ${expectedIdxFiles(split)}`);
    }
    return openIdxFolder(loc.dir, split, { name, classes: opts.classes ?? kind.classNames.length, classNames: kind.classNames, origin: loc.origin });
  }
  return openSample(name, split, true);
}

async function openSample(name: string, split: Split, fallback: boolean): Promise<Dataset> {
  const kind = IDX_DATASETS[name]!;
  const dir = samplePath(name);
  if (!findIdxFiles(dir, split)) {
    const where = datasetLocations(name).map((l) => l.dir).join(', ');
    throw new UserError(fallback
      ? `${name} was not found (looked in ${where}) and modelsmith ships no sample of it: set $MODELSMITH_DATA or give idx:<folder>`
      : `the shipped ${name} sample is missing from ${dir}: the installation is incomplete`);
  }
  const hint = kind.debianPackage ? `install ${kind.debianPackage} or set $MODELSMITH_DATA for the full set` : 'set $MODELSMITH_DATA for the full set';
  const origin = `from the sample shipped with modelsmith (data/sample/${name}${fallback ? `; full set not found: ${hint}` : ''})`;
  return openIdxFolder(dir, split, { name, classes: kind.classNames.length, classNames: kind.classNames, origin });
}

async function openIdxPath(dir: string, split: Split, opts: OpenOptions): Promise<Dataset> {
  if (!existsSync(dir)) throw new UserError(`IDX folder ${dir} does not exist`);
  const name = basename(dir);
  const kind = IDX_DATASETS[name];
  return openIdxFolder(dir, split, {
    name,
    ...(opts.classes !== undefined || kind ? { classes: opts.classes ?? kind!.classNames.length } : {}),
    ...(kind ? { classNames: kind.classNames } : {}),
    origin: `from ${dir}`,
  });
}

/** A bare path: told apart by what it holds. */
async function openPlainPath(dir: string, spec: string, split: Split, opts: OpenOptions): Promise<Dataset> {
  if (!existsSync(dir)) {
    throw new UserError(`dataset "${spec}" not found: ${dir} does not exist, and it is not a known name (fashion-mnist, mnist, fashion-mnist-sample, cifar10:<path>, cifar100:<path>, folder:<path>)`);
  }
  if (!statSync(dir).isDirectory()) throw new UserError(`dataset ${dir} is a file; expected a folder`);
  if (findIdxFiles(dir, split) || findIdxFiles(dir, split === 'train' ? 'test' : 'train')) return openIdxPath(dir, split, opts);
  for (const kind of ['cifar10', 'cifar100'] as const) {
    if (findCifarFolder(kind, dir)) return openCifar(kind, dir, split, cifarOptions(kind, opts));
  }
  const hasFolders = readdirSync(dir, { withFileTypes: true }).some((d) => d.isDirectory() && !d.name.startsWith('.'));
  if (hasFolders) return openImageFolder(dir, split, opts.shape ? { shape: opts.shape } : {});
  throw new UserError(`${dir}: no dataset found here: expected IDX files (${expectedIdxFiles(split)}), CIFAR binary files or one folder of images per class`);
}
