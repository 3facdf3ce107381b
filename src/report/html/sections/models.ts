/**
 * A folder of models made by `modelsmith disassemble` / `assemble` as a report section:
 * one row per model from the provenance stored in it (operation, classes, parents by
 * file name where the parent is in the folder, thresholds, method) with its size; and
 * the per-class accuracy bars of any saved `disassemble --json` result next to them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeModel } from '../../../onnx/proto.js';
import { contentHash, getLabels, getProvenance } from '../../../onnx/metadata.js';
import { modelStats } from '../../../onnx/stats.js';
import { esc, htmlTable } from '../format.js';
import { isObject, optionalJson, type Json } from '../read.js';
import { makeSection, type RenderContext } from '../context.js';
import type { Section } from '../page.js';
import { baseVsComponent } from './lego.js';

/** Models read per folder at most, and their size bound: a report reads metadata, not model zoos. */
const MAX_MODELS = 200;
const MAX_MODEL_BYTES = 256 * 2 ** 20;
/** Operations whose outputs this section describes. */
const OPERATIONS = new Set(['disassembled', 'assembled']);

interface ModelInfo {
  file: string;
  hash: string;
  provenance: Json;
  outputs: number | null;
  parameters: number | null;
  flops: number | null;
}

const cache = new Map<string, ModelInfo[]>();

function models(dir: string): ModelInfo[] {
  const hit = cache.get(dir);
  if (hit) return hit;
  const out: ModelInfo[] = [];
  let files: string[] = [];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.onnx'))
      .sort()
      .slice(0, MAX_MODELS);
  } catch {
    /* not a folder we can list: no models */
  }
  for (const f of files) {
    const path = join(dir, f);
    try {
      if (statSync(path).size > MAX_MODEL_BYTES) continue;
      const bytes = readFileSync(path);
      const model = decodeModel(bytes, { file: path, dir });
      const provenance = getProvenance(model);
      if (!provenance) continue;
      let stats: { parameters: number; flopsPerImage: number } | null = null;
      try {
        stats = modelStats(model);
      } catch {
        /* a graph whose shapes cannot be inferred still has its metadata */
      }
      out.push({
        file: f,
        hash: contentHash(bytes),
        provenance: provenance as Json,
        outputs: getLabels(model)?.length ?? null,
        parameters: stats?.parameters ?? null,
        flops: stats?.flopsPerImage ?? null,
      });
    } catch {
      /* not a readable model: not part of this section */
    }
  }
  cache.set(dir, out);
  return out;
}

export function isModelFolder(dir: string): boolean {
  return models(dir).some((m) => OPERATIONS.has(String(m.provenance['operation'])));
}

export async function modelSections(dir: string, ctx: RenderContext): Promise<Section[]> {
  const list = models(dir);
  const byHash = new Map(list.map((m) => [m.hash, m.file]));
  const rows = list.map((m) => {
    const { operation, parents, classes, ...rest } = m.provenance;
    return {
      file: m.file,
      operation,
      classes,
      parents: Array.isArray(parents) ? parents.map((h) => byHash.get(String(h)) ?? `${String(h).slice(0, 12)}…`).join(', ') : '–',
      outputs: m.outputs,
      parameters: m.parameters,
      flopsPerImage: m.flops,
      ...Object.fromEntries(Object.entries(rest).filter(([k]) => !['dataset', 'components', 'duplicates'].includes(k))),
    };
  });
  const body = [
    `<p class="summary">${list.length} model${list.length === 1 ? '' : 's'} with modelsmith provenance; ` +
      'parents named by file when they are in this folder, else by the start of their SHA-256.</p>',
    htmlTable(rows, { order: ['file', 'operation', 'classes', 'parents', 'outputs', 'parameters', 'flopsPerImage'] }),
  ];
  // `modelsmith disassemble ... --json > component.json` keeps the per-class accuracies of base and component.
  const saved = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .slice(0, MAX_MODELS)
    .map((f) => ({ f, r: optionalJson(join(dir, f)) }))
    .filter((x): x is { f: string; r: Json } => !!x.r && isObject(x.r['base']) && isObject(x.r['component']));
  for (const { f, r } of saved) {
    const base = r['base'] as Json,
      component = r['component'] as Json;
    body.push(
      `<h3>${esc(f)}</h3>`,
      // base k-way (the base's logits sliced to the task) where the file has it: like with like
      baseVsComponent(ctx.page, [
        {
          task: r['task'],
          baseAccuracy: base['accuracy'],
          componentAccuracy: component['accuracy'],
          ...(isObject(base['kWay']) ? { baseKWay: base['kWay']['accuracy'], base: base['kWay'] } : { base }),
          component,
        },
      ]),
    );
  }
  const own = saved.map((s) => s.r['provenance']).find(isObject) ?? null;
  return [
    makeSection(ctx, {
      title: `Models: ${list.map((m) => m.file).join(', ')}`,
      kind: 'models',
      source: dir,
      provenance: own,
      body: body.join('\n'),
      note: 'The models store what made them (operation, parents, data) but not the run; a saved --json result next to them carries the full provenance.',
    }),
  ];
}
