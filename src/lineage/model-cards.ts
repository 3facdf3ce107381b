/**
 * Hugging Face model-card metadata for a recovered forest, and model cards as truth.
 *
 * Per model, the card fields the Hub uses for model trees: `base_model` (the recovered
 * parent) and `base_model_relation`, decided from the weights of the recovered edge:
 * - quantized: the child looks quantized and its parent does not. A model looks
 *   quantized when its config.json has a `quantization_config`, or when every examined
 *   layer holds at most QUANTIZED_MAX_LEVELS distinct values (int8-style levels stored
 *   as floats; a trained float layer has about as many distinct values as entries);
 * - adapter: the update W_child - W_parent has low rank on every examined layer, at
 *   most ADAPTER_MAX_RANK_FRACTION of min(rows, cols) (numpy's rank tolerance), as a
 *   merged LoRA leaves it (rank <= r); a full fine-tune moves every direction;
 * - finetune: otherwise.
 * The examined layers are up to EXAMINED_LAYERS of the selected ones, evenly spaced.
 * What the models' own files declare (a README.md card, a lineage-zoo record) is kept
 * beside the recovered values for comparison, never copied into them.
 *
 * Cards as truth: a model folder's README.md whose YAML front matter names a
 * `base_model` that is one of the models (by folder name, or by the last part of an
 * `org/name` id) gives the edge [base_model, model].
 *
 * @example
 *   const cards = recoveredCards(forest);
 *   writeModelCards('out/', cards);   // out/model-cards.json, out/model-cards/<model>.md
 *   const truth = cardTruth(forest.nodes);   // { truth: { edges }, cards: 20, notes: [] } or undefined
 */
import { closeSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/atomic.js';
import { UserError } from '../util/errors.js';
import { matrixRankFast } from './rank.js';
import { closeSources, openSource, type ModelSource } from './sources.js';
import { checkTruth, type Truth } from './truth.js';
import type { LineageForest } from './forest.js';
import { freshName } from '../onnx/graph.js';

export type BaseModelRelation = 'finetune' | 'adapter' | 'quantized';
/** The relations the Hub's cards may declare (merge included, which a forest never recovers). */
export const CARD_RELATIONS = ['finetune', 'adapter', 'quantized', 'merge'] as const;

/** A layer with at most this many distinct values is quantized (int8: 255 levels, 256 with zero). */
export const QUANTIZED_MAX_LEVELS = 256;
/** A low-rank update: rank at most this fraction of min(rows, cols) on every examined layer. */
export const ADAPTER_MAX_RANK_FRACTION = 0.5;
export const EXAMINED_LAYERS = 4;
/** README.md front matter is read from the first this many bytes only. */
export const MAX_CARD_HEAD_BYTES = 256 * 1024;
const ZOO_RECORD_KEY = 'modelsmith.zoo';
const VARIANT_KEY = 'modelsmith.variant';

/** What a model's own files say about its base. */
export interface DeclaredBase {
  base_model: string | null;
  base_model_relation?: string;
  /** 'model card' (README.md front matter) or 'lineage-zoo record' */
  from: string;
}

export interface RecoveredCard {
  model: string;
  base_model: string | null;
  base_model_relation: BaseModelRelation | null;
  /** how the relation was decided, in words */
  evidence: string;
  declared?: DeclaredBase;
}

/** The two card fields of a README.md front matter. */
export interface CardFields {
  base_model: string[];
  base_model_relation?: string;
}

// ---- reading cards ----

/**
 * `base_model` (a string or a list) and `base_model_relation` from a card's YAML front
 * matter (between a first line `---` and the next `---`), or undefined without front
 * matter. Hand-written for these two keys of block/flow lists and plain or quoted
 * scalars: no YAML parser is among the runtime dependencies, and other keys are skipped
 * unread.
 */
export function parseCardFields(text: string, where: string): CardFields | undefined {
  const lines = text.split(/\r?\n/);
  if (lines[0]?.replace(/^\uFEFF/, '').trim() !== '---') return undefined;
  const end = lines.findIndex((l, i) => i > 0 && (l.trim() === '---' || l.trim() === '...'));
  if (end < 0) throw new UserError(`${where}: the YAML front matter opened by "---" on line 1 is not closed by a "---" line`);
  const body = lines.slice(1, end);
  const base = keyValues(body, 'base_model', where);
  const relation = keyValues(body, 'base_model_relation', where);
  if (relation.length > 1) throw new UserError(`${where}: base_model_relation must be one value, got ${relation.length}`);
  return { base_model: base, ...(relation[0] !== undefined ? { base_model_relation: relation[0] } : {}) };
}

/** The values of a top-level key: a scalar, a [flow, list] or a block list of "- item" lines. */
function keyValues(body: readonly string[], key: string, where: string): string[] {
  const at = body.findIndex((l) => new RegExp(`^${key}\\s*:`).test(l));
  if (at < 0) return [];
  const rest = stripComment(body[at]!.slice(body[at]!.indexOf(':') + 1)).trim();
  if (rest === '' || rest === '|' || rest === '>') {
    if (rest !== '') throw new UserError(`${where}: ${key} must be a name or a list of names, not a block scalar`);
    const items: string[] = [];
    for (const l of body.slice(at + 1)) {
      // a block sequence may sit at the key's own indentation ("- item" at column 0)
      const m = /^\s*-(?:\s+(.*))?$/.exec(l);
      if (!m && /^\S/.test(l)) break;
      if (m) items.push(scalar(stripComment(m[1] ?? '').trim(), key, where));
      else if (l.trim() !== '' && !l.trim().startsWith('#')) throw new UserError(`${where}: ${key} must be a name or a list of "- name" lines`);
    }
    return items;
  }
  if (rest.startsWith('[')) {
    if (!rest.endsWith(']')) throw new UserError(`${where}: ${key}: a [flow list] must end with "]" on the same line`);
    const inner = rest.slice(1, -1).trim();
    return inner === '' ? [] : inner.split(',').map((v) => scalar(v.trim(), key, where));
  }
  if (rest.startsWith('{')) throw new UserError(`${where}: ${key} must be a name or a list of names, not a mapping`);
  return [scalar(rest, key, where)];
}

function stripComment(v: string): string {
  const t = v.trim();
  if (t.startsWith('"') || t.startsWith("'")) return v;
  const i = v.search(/\s#/);
  return i < 0 ? v : v.slice(0, i);
}

function scalar(v: string, key: string, where: string): string {
  let s = v;
  if ((s.startsWith('"') && s.endsWith('"') && s.length >= 2) || (s.startsWith("'") && s.endsWith("'") && s.length >= 2)) s = s.slice(1, -1);
  // eslint-disable-next-line no-control-regex -- control characters are exactly what this refuses
  if (s === '' || /[\u0000-\u001f]/.test(s) || s.length > 300)
    throw new UserError(`${where}: ${key} holds an empty or malformed value ${JSON.stringify(v.slice(0, 80))}`);
  return s;
}

/**
 * The card fields of a model folder's README.md, or undefined when there is no
 * README.md, it has no front matter, or the model is a file rather than a folder.
 * Only the head of the file is read; README.md must resolve inside the folder.
 */
export function readFolderCard(folder: string): CardFields | undefined {
  try {
    if (!statSync(folder).isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  const path = join(folder, 'README.md');
  let st;
  try {
    st = statSync(path);
  } catch {
    return undefined;
  }
  if (!st.isFile()) throw new UserError(`${path} is not a regular file`);
  const real = realpathSync(path);
  const rel = relative(realpathSync(folder), real);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw new UserError(`${path} resolves to ${real}, outside its model folder (symlink?)`);
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(Math.min(st.size, MAX_CARD_HEAD_BYTES));
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    const text = buf.subarray(0, off).toString('utf8');
    try {
      return parseCardFields(text, path);
    } catch (e) {
      if (e instanceof UserError && st.size > MAX_CARD_HEAD_BYTES && /not closed/.test(e.message)) {
        throw new UserError(`${path}: the YAML front matter is not closed within the first ${MAX_CARD_HEAD_BYTES} bytes`);
      }
      throw e;
    }
  } finally {
    closeSync(fd);
  }
}

/** The model a card's base_model value names: a model's own name, or the last part of "org/name". */
export function resolveBaseModel(value: string, names: ReadonlySet<string>): string | undefined {
  if (names.has(value)) return value;
  const last = value.split('/').at(-1)!;
  return names.has(last) ? last : undefined;
}

export interface CardTruth {
  truth: Truth;
  /** models whose card names a base_model */
  cards: number;
  /** what could not become an edge, in words */
  notes: string[];
}

/** Truth edges from the models' own cards, or undefined when no model's card names a base_model. */
export function cardTruth(nodes: readonly { name: string; path: string }[]): CardTruth | undefined {
  const names = new Set(nodes.map((n) => n.name));
  const edges: [string, string][] = [];
  const notes: string[] = [];
  let cards = 0;
  for (const n of nodes) {
    const card = readFolderCard(n.path);
    if (!card || card.base_model.length === 0) continue;
    cards++;
    const inSet = card.base_model.map((b) => resolveBaseModel(b, names)).filter((b): b is string => b !== undefined);
    if (card.base_model.length > 1) {
      notes.push(`${n.name}: its card names ${card.base_model.length} base models (a merge); lineage recovers trees, so it is left out of the truth`);
    } else if (inSet.length === 0) {
      notes.push(`${n.name}: its card's base_model ${card.base_model[0]} is not among the models, so it is a root here`);
    } else {
      edges.push([inSet[0]!, n.name]);
    }
  }
  if (cards === 0) return undefined;
  return { truth: checkTruth({ edges }, [...names], 'model cards (README.md base_model)'), cards, notes };
}

// ---- recovering cards ----

/** What the model's own files declare: its card, else a lineage-zoo record in its weights' metadata. */
function declaredBase(source: ModelSource, names: ReadonlySet<string>): DeclaredBase | undefined {
  const card = readFolderCard(source.path);
  if (card && (card.base_model.length > 0 || card.base_model_relation)) {
    const b = card.base_model.length === 1 ? card.base_model[0]! : null;
    return {
      base_model: b === null ? null : (resolveBaseModel(b, names) ?? b),
      ...(card.base_model_relation ? { base_model_relation: card.base_model_relation } : {}),
      from: 'model card',
    };
  }
  const raw = source.metadata()[ZOO_RECORD_KEY];
  if (raw === undefined) return undefined;
  try {
    const r = JSON.parse(raw) as { parent?: unknown; rank?: unknown };
    if (r.parent === null || typeof r.parent === 'string') {
      // a robustness copy keeps the record of the model it was made from, and says so
      const variant = source.metadata()[VARIANT_KEY];
      const kind = variant === undefined ? undefined : (JSON.parse(variant) as { kind?: unknown }).kind;
      return {
        base_model: r.parent,
        ...(r.parent !== null ? { base_model_relation: typeof r.rank === 'number' ? 'adapter' : 'finetune' } : {}),
        from: kind === undefined ? 'lineage-zoo record' : `lineage-zoo record of the model this ${String(kind)} copy was made from`,
      };
    }
  } catch {
    // a record that does not parse declares nothing
  }
  return undefined;
}

/** Up to EXAMINED_LAYERS selected 2-D layers, evenly spaced. */
function examined(forest: LineageForest): { name: string; shape: number[] }[] {
  const two = forest.selection.layers.filter((l) => l.shape.length === 2);
  if (two.length <= EXAMINED_LAYERS) return two;
  return Array.from({ length: EXAMINED_LAYERS }, (_, i) => two[Math.round((i * (two.length - 1)) / (EXAMINED_LAYERS - 1))]!);
}

function distinctAtMost(v: Float32Array, max: number): boolean {
  const seen = new Set<number>();
  for (let i = 0; i < v.length; i++) {
    seen.add(v[i]!);
    if (seen.size > max) return false;
  }
  return true;
}

/** Why a model looks quantized, or undefined. */
function quantizedBecause(source: ModelSource, layers: readonly { name: string; shape: number[] }[]): string | undefined {
  const q = source.config?.['quantization_config'];
  if (q !== undefined && q !== null) {
    const method =
      typeof q === 'object' && typeof (q as Record<string, unknown>)['quant_method'] === 'string' ? ` (${(q as Record<string, string>)['quant_method']})` : '';
    return `config.json has quantization_config${method}`;
  }
  // only layers with well over QUANTIZED_MAX_LEVELS entries can show the levels
  const big = layers.filter((l) => l.shape[0]! * l.shape[1]! > 2 * QUANTIZED_MAX_LEVELS);
  if (big.length === 0) return undefined;
  if (big.every((l) => distinctAtMost(source.read(l.name), QUANTIZED_MAX_LEVELS))) {
    return `at most ${QUANTIZED_MAX_LEVELS} distinct values in each of ${big.length} examined layers`;
  }
  return undefined;
}

/**
 * The card metadata of every model of a recovered forest, from the weights of each
 * recovered edge (files re-opened by the forest's paths; a few layers per edge are read).
 */
export function recoveredCards(forest: LineageForest): RecoveredCard[] {
  const layers = examined(forest);
  const names = new Set(forest.nodes.map((n) => n.name));
  const sources = new Map<string, ModelSource>();
  try {
    for (const n of forest.nodes) sources.set(n.name, openSource(n.path));
    const quantized = new Map<string, string | undefined>();
    const quantizedOf = (name: string): string | undefined => {
      if (!quantized.has(name)) quantized.set(name, quantizedBecause(sources.get(name)!, layers));
      return quantized.get(name);
    };
    return forest.nodes.map((n): RecoveredCard => {
      const src = sources.get(n.name)!;
      const declared = declaredBase(src, names);
      const base = { model: n.name, ...(declared ? { declared } : {}) };
      if (n.parent === null) return { ...base, base_model: null, base_model_relation: null, evidence: 'a root of the recovered forest' };
      const q = quantizedOf(n.name);
      if (q !== undefined && quantizedOf(n.parent) === undefined) return { ...base, base_model: n.parent, base_model_relation: 'quantized', evidence: q };
      if (layers.length === 0)
        return { ...base, base_model: n.parent, base_model_relation: 'finetune', evidence: 'no 2-D layer selected to test the rank of the update' };
      const parent = sources.get(n.parent)!;
      const ranks = layers.map((l) => {
        const [rows, cols] = l.shape as [number, number];
        const c = src.read(l.name),
          p = parent.read(l.name);
        const d = new Float32Array(c.length);
        for (let i = 0; i < d.length; i++) d[i] = c[i]! - p[i]!;
        return { rank: matrixRankFast(d, rows, cols), of: Math.min(rows, cols) };
      });
      const low = ranks.every((r) => r.rank <= ADAPTER_MAX_RANK_FRACTION * r.of);
      const listed = ranks.map((r) => `${r.rank}/${r.of}`).join(', ');
      return {
        ...base,
        base_model: n.parent,
        base_model_relation: low ? 'adapter' : 'finetune',
        evidence: `rank of the update ${listed} on ${ranks.length} examined layers: ${low ? 'low rank (a merged adapter)' : 'full rank'}`,
      };
    });
  } finally {
    closeSources([...sources.values()]);
  }
}

/** How often the recovered relation matches the declared one, over edges whose declared base is the recovered parent. */
export function relationAgreement(cards: readonly RecoveredCard[]): { agree: number; compared: number } {
  let agree = 0,
    compared = 0;
  for (const c of cards) {
    const d = c.declared;
    if (!d?.base_model_relation || c.base_model === null || d.base_model !== c.base_model) continue;
    compared++;
    if (d.base_model_relation === c.base_model_relation) agree++;
  }
  return { agree, compared };
}

// ---- writing ----

/** README.md front matter for one model (a root gets a comment instead of base_model). */
export function cardFrontMatter(c: RecoveredCard): string {
  const q = (s: string): string => (/^[A-Za-z0-9._/-]+$/.test(s) ? s : JSON.stringify(s));
  const body =
    c.base_model === null
      ? ['# no base_model: a root of the recovered forest']
      : [`base_model: ${q(c.base_model)}`, `base_model_relation: ${c.base_model_relation}`];
  return ['---', ...body, '---', ''].join('\n');
}

/** A file name for a model name: path separators and control characters replaced, no leading dot. */
function safeFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\./, '_') || '_';
}

export interface CardFiles {
  json: string;
  folder: string;
}

/** Writes `<dir>/model-cards.json` and `<dir>/model-cards/<model>.md` (front matter per model). */
export function writeModelCards(dir: string, cards: readonly RecoveredCard[]): CardFiles {
  const files: CardFiles = { json: join(dir, 'model-cards.json'), folder: join(dir, 'model-cards') };
  const used = new Set<string>();
  const entries = cards.map((c) => {
    const f = freshName(safeFileName(c.model), (n) => used.has(n));
    used.add(f);
    return { card: c, file: `${f}.md` };
  });
  for (const e of entries) writeFileAtomic(join(files.folder, e.file), cardFrontMatter(e.card));
  writeJsonAtomic(files.json, {
    rule: {
      quantized: `config.json quantization_config, or at most ${QUANTIZED_MAX_LEVELS} distinct values in every examined layer (child only)`,
      adapter:
        `rank(W_child - W_parent) <= ${ADAPTER_MAX_RANK_FRACTION} x min(rows, cols) on every examined layer ` +
        `(up to ${EXAMINED_LAYERS}, evenly spaced over the selection)`,
      finetune: 'otherwise',
    },
    cards: entries.map((e) => ({ ...e.card, file: join('model-cards', e.file) })),
  });
  return files;
}
