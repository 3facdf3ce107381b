/**
 * The demo's folder (results.json of `modelsmith demo`) as report sections: the models
 * trained, and the LEGO part; the demo's other parts (training logs, lineage, stitching,
 * CKA) live in subfolders and are shown by their own section kinds.
 */
import { join } from 'node:path';
import { esc, htmlTable } from '../format.js';
import { isObject, provenanceOf, readJson, tryReadJson } from '../read.js';
import { makeSection, type RenderContext } from '../context.js';
import type { Section } from '../page.js';
import { legoDemoBody } from './lego.js';

export function isDemo(dir: string): boolean {
  const r = tryReadJson(join(dir, 'results.json'));
  return !!r && Array.isArray(r['models']) && isObject(r['lego']) && isObject(r['stitch']);
}

export async function demoSections(dir: string, ctx: RenderContext): Promise<Section[]> {
  const r = readJson(join(dir, 'results.json'));
  const provenance = provenanceOf(r);
  const models = (r['models'] as unknown[]).filter(isObject).map((m) => ({
    name: m['name'],
    parameters: m['parameters'],
    flopsPerImage: m['flopsPerImage'],
    cuts: Array.isArray(m['cuts']) ? m['cuts'].length : null,
    epochs: m['epochs'],
    trainSeconds: m['trainSeconds'],
    valAccuracy: m['valAccuracy'],
    testAccuracy: m['epochs'] === 0 ? null : m['accuracy'],
  }));
  const overview = [
    `<p class="summary">The end-to-end run on <code>${esc(r['data'] ?? '?')}</code>: ` +
      'zoo models trained, then Model LEGO, lineage recovery, stitching and CKA on them' +
      `${typeof r['seconds'] === 'number' ? ` (${r['seconds'].toFixed(1)} s)` : ''}. ` +
      'Test accuracy is only reported, never used to choose; an untrained model shows none.</p>',
    htmlTable(models, { caption: 'Zoo models (seed 0)' }),
  ].join('\n');
  const sections = [makeSection(ctx, { title: 'modelsmith demo', kind: 'demo', source: dir, provenance, body: overview })];
  if (isObject(r['lego'])) {
    sections.push(
      makeSection(ctx, {
        title: `Model LEGO: ${String(r['lego']['model'] ?? '')}`,
        kind: 'lego (demo)',
        source: join(dir, 'results.json'),
        provenance,
        body: legoDemoBody(ctx.page, r['lego']),
      }),
    );
  }
  return sections;
}
