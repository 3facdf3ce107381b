/**
 * Which layers lineage compares. Explicit patterns (globs such as `*.attn.*`, or
 * `/regex/`), or by default: a transformer's attention projections and MLP weights,
 * found by the naming conventions in TRANSFORMER_WEIGHTS (the reference compares the
 * attention and MLP matrices of ViTs); otherwise the square 2-D floating-point weight
 * matrices (hidden Linear layers in an MLP).
 * Every model must hold every selected layer with the same shape: a model that does not
 * is reported by name, never silently dropped.
 *
 * @example
 *   const sel = selectLayers(models, { patterns: ['fc*.weight'] });
 *   sel.layers  // [{ name: 'fc2.weight', shape: [256, 256] }, ...]
 */
import { OptionError, UserError } from '../util/errors.js';
import type { LayerInfo, ModelSource } from './sources.js';

export interface SelectedLayer {
  name: string;
  shape: number[];
  /** number of values */
  size: number;
}

export interface LayerSelection {
  /** how the layers were chosen, for printing */
  rule: string;
  layers: SelectedLayer[];
}

export interface SelectOptions {
  /** globs (`*`, `?`) or `/regex/flags`; a layer is selected when any matches */
  patterns?: readonly string[];
}

/** A glob or /regex/ as a RegExp over the whole layer name. */
export function layerPattern(p: string): RegExp {
  const m = /^\/(.*)\/([a-z]*)$/.exec(p);
  if (m) {
    try {
      return new RegExp(m[1]!, m[2]);
    } catch (e) {
      throw new OptionError((o) => `${o('layers')}: ${p} is not a valid regular expression (${(e as Error).message})`);
    }
  }
  const re = p
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`);
}

/**
 * Transformer weight matrices by naming convention, one row per family: the attention
 * projections (query/key/value, fused or not, and output) and the MLP weights. Not the
 * patch embedding, position embedding, norms or head.
 */
export const TRANSFORMER_WEIGHTS: readonly { family: string; pattern: RegExp }[] = [
  { family: 'torchvision ViT', pattern: /\.self_attention\.(in_proj_weight|out_proj\.weight)$|\.mlp\.[03]\.weight$/ },
  {
    family: 'Hugging Face ViT/BERT',
    pattern: /\.attention\.(attention|self)\.(query|key|value)\.weight$|\.(attention\.output|intermediate|layer\.\d+\.output)\.dense\.weight$/,
  },
  { family: 'timm ViT', pattern: /\.attn\.(qkv|proj)\.weight$|\.mlp\.fc[12]\.weight$/ },
  { family: 'Llama/Mistral', pattern: /\.self_attn\.[qkvo]_proj\.weight$|\.mlp\.(gate|up|down)_proj\.weight$/ },
];

/** The 2-D float layers any transformer naming convention picks, and which conventions matched. */
function transformerLayers(layers: readonly LayerInfo[]): { families: string[]; chosen: LayerInfo[] } | undefined {
  const hit = (l: LayerInfo, pattern: RegExp): boolean => l.float && l.shape.length === 2 && pattern.test(l.name);
  const chosen = layers.filter((l) => TRANSFORMER_WEIGHTS.some((t) => hit(l, t.pattern)));
  if (chosen.length === 0) return undefined;
  return { families: TRANSFORMER_WEIGHTS.filter((t) => chosen.some((l) => hit(l, t.pattern))).map((t) => t.family), chosen };
}

const isSquare2d = (l: LayerInfo): boolean => l.float && l.shape.length === 2 && l.shape[0] === l.shape[1] && l.shape[0]! > 1;

/** The selected layers, checked to be present with one shape in every model. */
export function selectLayers(models: readonly ModelSource[], opts: SelectOptions = {}): LayerSelection {
  if (models.length === 0) throw new UserError('lineage: no models to compare');
  const first = models[0]!;
  const firstLayers = first.layers();
  let chosen: LayerInfo[];
  let rule: string;
  if (opts.patterns && opts.patterns.length > 0) {
    const res = opts.patterns.map(layerPattern);
    chosen = firstLayers.filter((l) => res.some((r) => r.test(l.name)));
    rule = `layers matching ${opts.patterns.join(', ')}`;
    if (chosen.length === 0) {
      const patterns = opts.patterns.join(', ');
      throw new OptionError((o) => `lineage: ${o('layers', patterns)} matches no tensor of ${first.name} (it has ${preview(firstLayers.map((l) => l.name))})`);
    }
    const notFloat = chosen.find((l) => !l.float);
    if (notFloat)
      throw new OptionError((o) => `lineage: layer "${notFloat.name}" of ${first.name} is ${notFloat.dtype}, not floating point; narrow ${o('layers')}`);
  } else if (transformerLayers(firstLayers)) {
    const t = transformerLayers(firstLayers)!;
    chosen = t.chosen;
    rule = `transformer attention and MLP weights, ${t.families.join(' + ')} names (default)`;
  } else {
    chosen = firstLayers.filter(isSquare2d);
    rule = 'square 2-D floating-point matrices (default)';
    if (chosen.length === 0) {
      throw new OptionError(
        (o) =>
          `lineage: ${first.name} has no square 2-D weight matrix; choose layers with ${o('layers')} (it has ${preview(firstLayers.map((l) => `${l.name} [${l.shape.join('x')}]`))})`,
      );
    }
  }
  const layers = chosen.map((l) => ({ name: l.name, shape: [...l.shape], size: l.shape.reduce((a, b) => a * b, 1) }));
  checkShared(models, layers, 'selected');
  return { rule, layers };
}

/** Every 2-D floating-point tensor shared by all models (the reference's clustering distance uses them all). */
export function all2dLayers(models: readonly ModelSource[]): SelectedLayer[] {
  const first = models[0]!;
  const layers = first
    .layers()
    .filter((l) => l.float && l.shape.length === 2)
    .map((l) => ({ name: l.name, shape: [...l.shape], size: l.shape[0]! * l.shape[1]! }));
  checkShared(models, layers, '2-D');
  return layers;
}

function checkShared(models: readonly ModelSource[], layers: readonly SelectedLayer[], what: string): void {
  for (const m of models.slice(1)) {
    const have = new Map(m.layers().map((l) => [l.name, l]));
    for (const l of layers) {
      const h = have.get(l.name);
      if (!h)
        throw new UserError(
          `lineage: model ${m.name} (${m.path}) has no layer "${l.name}" (a ${what} layer of ${models[0]!.name}); all models must share the compared layers`,
        );
      if (h.shape.length !== l.shape.length || h.shape.some((d, i) => d !== l.shape[i])) {
        throw new UserError(
          `lineage: layer "${l.name}" is [${h.shape.join('x')}] in ${m.name} but [${l.shape.join('x')}] in ${models[0]!.name}; models must share the compared layers`,
        );
      }
      if (!h.float) throw new UserError(`lineage: layer "${l.name}" of ${m.name} is ${h.dtype}, not floating point`);
    }
  }
}

function preview(names: string[]): string {
  return names.length <= 8 ? names.join(', ') : `${names.slice(0, 8).join(', ')}, ... (${names.length} in all)`;
}
