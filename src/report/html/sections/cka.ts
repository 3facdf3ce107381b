/**
 * A CKA folder (matrix.json of `modelsmith cka`) as a report section: the biased and the
 * debiased matrices, each with the pair kinds side by side on one 0..1 colour scale, and
 * the lower-left vs elsewhere summary of each.
 */
import { join } from 'node:path';
import { PAIR_TITLES } from '../../../stitch/controls.js';
import { heatmapSpec } from '../heatmap.js';
import { esc } from '../format.js';
import { isMatrix, isObject, need, provenanceOf, tryReadJson } from '../read.js';
import { baseName, makeSection, type RenderContext } from '../context.js';
import type { Section } from '../page.js';
import { cutLabels, readGridMatrix, triangleTable } from './stitch.js';

const ESTIMATORS = ['biased', 'debiased'] as const;
const fmt = (v: number): string => v.toFixed(3);

export function isCkaGrid(dir: string): boolean {
  const m = tryReadJson(join(dir, 'matrix.json'));
  return !!m && m['measure'] === 'linear-cka';
}

export async function ckaSections(dir: string, ctx: RenderContext): Promise<Section[]> {
  const file = join(dir, 'matrix.json');
  const { m, senders, receivers, kinds, matrices } = readGridMatrix(file, 'an object with the biased and debiased matrices');
  const of = (est: string): (number | null)[][][] | undefined => {
    const byKind = matrices[est];
    if (!isObject(byKind)) return undefined;
    const all = kinds.map((k) => byKind[k]);
    need(
      all.every((x) => isMatrix(x, senders.length, receivers.length)),
      file,
      `matrices.${est}`,
      `a ${senders.length}x${receivers.length} matrix per pair kind`,
    );
    return all as (number | null)[][][];
  };
  const cuts = isObject(m['cuts']) ? m['cuts'] : {};
  const rows = cutLabels(senders, cuts['senders']),
    cols = cutLabels(receivers, cuts['receivers']);
  const panels = kinds.map((k) => PAIR_TITLES[k] ?? k);
  const values = Object.fromEntries(ESTIMATORS.map((e) => [e, of(e)]));
  const a = String(m['a'] ?? 'A'),
    b = String(m['b'] ?? 'B');
  const main = m['estimator'] === 'debiased' ? 'debiased' : 'biased';
  const body: string[] = [
    `<p class="summary">Linear CKA between the sender cuts of A = <code>${esc(a)}</code> (rows) ` +
      `and the receiver cuts of B = <code>${esc(b)}</code> (columns), ` +
      `on ${esc(m['samples'] ?? '?')} ${esc(m['split'] ?? '')} images of <code>${esc(m['data'] ?? '?')}</code> (seed ${esc(m['seed'] ?? '?')}). ` +
      'Both estimators are shown; 1 means the two representations agree up to rotation and scale.</p>',
  ];
  for (const est of [main, ...ESTIMATORS.filter((e) => e !== main)]) {
    const v = values[est];
    if (!v) continue;
    const other = est === 'biased' ? 'debiased' : 'biased';
    const { spec, cells } = heatmapSpec({
      panels,
      rows,
      cols,
      values: v,
      rowTitle: 'sender cut (A)',
      colTitle: 'receiver cut (B)',
      measure: { title: `CKA (${est})`, domain: [0, 1], format: fmt },
      extra: (p, r, c) => {
        const x = values[other]?.[p]?.[r]?.[c];
        return typeof x === 'number' ? [[`CKA (${other})`, fmt(x)]] : [];
      },
    });
    body.push(`<h3>Linear CKA, ${est} estimator</h3>`, ctx.page.chart(spec, { cells, label: `CKA ${est}` }));
    const t = isObject(m['triangles']) ? m['triangles'][est] : undefined;
    if (isObject(t)) body.push(triangleTable(t, kinds, fmt, `mean CKA (${est})`));
  }
  return [
    makeSection(ctx, { title: `Linear CKA: ${baseName(a)} → ${baseName(b)}`, kind: 'CKA', source: dir, provenance: provenanceOf(m), body: body.join('\n') }),
  ];
}
