/**
 * A stitching grid folder (matrix.json, grid.json, cells/) as a report section: one
 * heatmap per measure with the pair kinds side by side, the lower-left vs elsewhere
 * summary, the networks' own accuracies, the settings and any skipped cells.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PAIR_TITLES, type PairKind } from '../../../stitch/controls.js';
import { heatmapSpec, type CutLabel } from '../heatmap.js';
import { esc, fieldTable, gridTable, htmlTable, number, pct } from '../format.js';
import { isMatrix, isObject, isStringArray, need, optionalJson, provenanceOf, readJson, tryReadJson, type Json } from '../read.js';
import { baseName, makeSection, type RenderContext } from '../context.js';
import type { Section } from '../page.js';

/** Each measure of matrix.json: heading, legend name, colour domain (null: the data's range) and cell format. */
const MEASURES: Record<string, { heading: (mode: string) => string; legend: string; domain: [number, number] | null; format: (v: number) => string }> = {
  accuracy: {
    heading: (mode) =>
      mode === 'lsq' ? 'Least-squares stitch accuracy' : mode === 'copy' ? 'Copy-trained stitch accuracy' : 'Stitched accuracy (task-trained)',
    legend: 'accuracy',
    domain: [0, 1],
    format: pct,
  },
  initAccuracy: { heading: () => 'Accuracy of the least-squares initialisation', legend: 'accuracy', domain: [0, 1], format: pct },
  fitError: { heading: () => 'Least-squares relative fit error (training images)', legend: 'fit error', domain: [0, 1], format: (v) => v.toFixed(3) },
  testFitError: { heading: () => 'Least-squares relative fit error (test images)', legend: 'fit error', domain: [0, 1], format: (v) => v.toFixed(3) },
  vanillaAccuracy: { heading: () => 'Task-trained stitch accuracy', legend: 'accuracy', domain: [0, 1], format: pct },
  ev: { heading: () => 'MSE of the task-trained stitch to the expected activation (EV)', legend: 'MSE', domain: null, format: (v) => v.toPrecision(3) },
  es: { heading: () => 'MSE of the copy-trained stitch to the expected activation (ES)', legend: 'MSE', domain: null, format: (v) => v.toPrecision(3) },
  sv: { heading: () => 'MSE between the copy-trained and task-trained stitches (SV)', legend: 'MSE', domain: null, format: (v) => v.toPrecision(3) },
};

/** Tooltip lines for the other measures of the same cell. */
const TOOLTIP_MEASURES: [string, string][] = [
  ['accuracy', 'accuracy'],
  ['initAccuracy', 'init accuracy'],
  ['fitError', 'fit error (train)'],
  ['testFitError', 'fit error (test)'],
  ['vanillaAccuracy', 'task-trained accuracy'],
];

/** What the networks in matrix.json's `base` are. */
const NETWORKS: Record<string, string> = { A: 'A (sender network)', B: 'B (receiver network)', A0: 'random A', B0: 'random B' };

export function isStitchGrid(dir: string): boolean {
  const m = tryReadJson(join(dir, 'matrix.json'));
  return !!m && isObject(m['matrices']) && typeof m['mode'] === 'string' && isStringArray(m['senders']);
}

/** What the matrix.json of a stitching grid and of a CKA grid share, each field checked: cut names, pair kinds, the matrices. */
export function readGridMatrix(file: string, matrices: string): { m: Json; senders: string[]; receivers: string[]; kinds: PairKind[]; matrices: Json } {
  const m = readJson(file);
  need(isStringArray(m['senders']) && m['senders'].length > 0, file, 'senders', 'a non-empty list of cut names');
  need(isStringArray(m['receivers']) && m['receivers'].length > 0, file, 'receivers', 'a non-empty list of cut names');
  need(isStringArray(m['kinds']) && m['kinds'].length > 0, file, 'kinds', 'a non-empty list of pair kinds');
  need(isObject(m['matrices']), file, 'matrices', matrices);
  return { m, senders: m['senders'], receivers: m['receivers'], kinds: m['kinds'] as PairKind[], matrices: m['matrices'] };
}

export async function stitchSections(dir: string, ctx: RenderContext): Promise<Section[]> {
  const file = join(dir, 'matrix.json');
  const { m, senders, receivers, kinds, matrices: measures } = readGridMatrix(file, 'an object of measures');
  const mode = String(m['mode']);
  const matrices: Record<string, (number | null)[][][]> = {};
  for (const [measure, byKind] of Object.entries(measures)) {
    if (!isObject(byKind)) continue;
    const all = kinds.map((k) => byKind[k]);
    if (all.every((x) => isMatrix(x, senders.length, receivers.length))) matrices[measure] = all as (number | null)[][][];
    else need(measure !== 'accuracy', file, `matrices.${measure}`, `a ${senders.length}x${receivers.length} matrix per pair kind`);
  }
  need(matrices['accuracy'], file, 'matrices.accuracy', 'present');

  const grid = optionalJson(join(dir, 'grid.json'));
  const rows = cutLabels(senders, grid?.['senders']);
  const cols = cutLabels(receivers, grid?.['receivers']);
  const stitchKinds = readCellKinds(dir, senders.length * receivers.length * kinds.length);
  const panels = kinds.map((k) => PAIR_TITLES[k] ?? k);
  const extra =
    (shown: string) =>
    (p: number, r: number, c: number): [string, string][] => {
      const lines: [string, string][] = [];
      const sk = stitchKinds.get(`${kinds[p]}\u0000${senders[r]}\u0000${receivers[c]}`);
      lines.push(['stitch', `${sk ? `${sk}, ` : ''}${mode}`]);
      for (const [measure, title] of TOOLTIP_MEASURES) {
        const v = matrices[measure]?.[p]?.[r]?.[c];
        if (measure !== shown && typeof v === 'number') lines.push([title, MEASURES[measure]!.format(v)]);
      }
      return lines;
    };

  const body: string[] = [];
  const a = String(m['a'] ?? 'A'),
    b = String(m['b'] ?? 'B');
  const cells = isObject(m['cells']) ? m['cells'] : {};
  body.push(
    `<p class="summary">Rows: sender cuts of A = <code>${esc(a)}</code>; columns: receiver cuts of B = <code>${esc(b)}</code>. ` +
      `Data <code>${esc(m['data'] ?? '?')}</code>: stitches trained on ${num(m['trainImages'])} images, scored on ${num(m['testImages'])} test images. ` +
      `${num(cells['done'])} of ${num(cells['total'])} cells done` +
      `${m['complete'] === false ? ' (the grid is not finished: rerun the same command to continue)' : ''}` +
      `${typeof m['secondsPerCell'] === 'number' ? `, ${m['secondsPerCell'].toFixed(1)} s per cell` : ''}.</p>`,
  );
  if (isObject(m['base'])) {
    body.push(
      gridTable(
        ['network', 'own test accuracy'],
        Object.entries(m['base']).map(([k, v]) => [NETWORKS[k] ?? k, typeof v === 'number' ? pct(v) : '–']),
        { caption: 'The networks on the same test images' },
      ),
    );
  }
  for (const measure of orderMeasures(Object.keys(matrices))) {
    const def = MEASURES[measure] ?? { heading: () => measure, legend: measure, domain: null, format: (v: number) => number(v) };
    const { spec, cells: n } = heatmapSpec({
      panels,
      rows,
      cols,
      values: matrices[measure]!,
      rowTitle: 'sender cut (A)',
      colTitle: 'receiver cut (B)',
      measure: { title: def.legend, domain: def.domain ?? dataRange(matrices[measure]!), format: def.format },
      extra: extra(measure),
    });
    body.push(`<h3>${esc(def.heading(mode))}</h3>`, ctx.page.chart(spec, { cells: n, label: def.heading(mode) }));
    if (measure === 'accuracy' && isObject(m['triangles'])) body.push(triangleTable(m['triangles'], kinds, pct, 'mean accuracy'));
  }
  const skipped = Array.isArray(cells['skipped']) ? cells['skipped'].filter(isObject) : [];
  if (skipped.length) body.push('<h3>Skipped cells</h3>', htmlTable(skipped));
  if (isObject(m['options'])) body.push('<h3>Settings</h3>', fieldTable(m['options']));
  const epochs =
    isObject(m['options']) && typeof m['options']['epochs'] === 'number' && mode !== 'lsq'
      ? `, ${m['options']['epochs']} epoch${m['options']['epochs'] === 1 ? '' : 's'}`
      : '';
  return [
    makeSection(ctx, {
      title: `Stitching: ${baseName(a)} → ${baseName(b)} (${mode}${epochs})`,
      kind: 'stitch grid',
      source: dir,
      provenance: provenanceOf(m),
      body: body.join('\n'),
    }),
  ];
}

/** The lower-left vs elsewhere summary of the reference (sender relatively at least as deep as the receiver). */
export function triangleTable(triangles: Json, kinds: readonly string[], format: (v: number) => string, what: string): string {
  const rows = kinds
    .filter((k) => isObject(triangles[k]))
    .map((k) => {
      const t = triangles[k] as Json;
      const lo = typeof t['lowerLeft'] === 'number' ? t['lowerLeft'] : null,
        hi = typeof t['elsewhere'] === 'number' ? t['elsewhere'] : null;
      return [
        PAIR_TITLES[k as PairKind] ?? k,
        lo === null ? '–' : format(lo),
        hi === null ? '–' : format(hi),
        lo === null || hi === null ? '–' : (lo - hi >= 0 ? '+' : '') + format(lo - hi).replace(/^-/, '−'),
      ];
    });
  return gridTable(['pair', `${what}, lower-left triangle`, `${what}, elsewhere`, 'difference'], rows, {
    caption: 'Lower-left triangle: cells whose sender is relatively as deep as the receiver or deeper (row i, column j with i/(rows-1) ≥ j/(cols-1)).',
  });
}

function orderMeasures(found: string[]): string[] {
  const known = Object.keys(MEASURES);
  return [...known.filter((k) => found.includes(k)), ...found.filter((k) => !known.includes(k))];
}

/** Cut names with their tensor and shape from grid.json when it lists them. */
export function cutLabels(names: readonly string[], described: unknown): CutLabel[] {
  const list = Array.isArray(described) ? described.filter(isObject) : [];
  return names.map((name) => {
    const d = list.find((x) => x['name'] === name);
    const shape = Array.isArray(d?.['shape']) ? (d['shape'] as unknown[]).join('×') : undefined;
    const tensor = typeof d?.['tensor'] === 'string' && d['tensor'] !== name ? d['tensor'] : undefined;
    const detail = [tensor, shape].filter(Boolean).join(', ');
    return detail ? { name, detail } : { name };
  });
}

/** "kind\0sender\0receiver" -> the stitch layer's structure ("downsample ×4, 16×28×28 → 32×7×7"), from cells/*.json. */
function readCellKinds(dir: string, expected: number): Map<string, string> {
  const out = new Map<string, string>();
  const cells = join(dir, 'cells');
  if (!existsSync(cells)) return out;
  const files = readdirSync(cells).filter((f) => f.endsWith('.json'));
  // A cell file is a few hundred bytes; a folder far larger than the grid is not this grid's.
  if (files.length > 2 * expected + 16) return out;
  for (const f of files) {
    const c = optionalJson(join(cells, f));
    const s = c?.['stitch'];
    if (!c || !isObject(s) || typeof s['kind'] !== 'string') continue;
    const dims = (v: unknown): string => (Array.isArray(v) ? v.join('×') : '?');
    const ratio = typeof s['ratio'] === 'number' && s['ratio'] !== 1 ? ` ×${s['ratio']}` : '';
    out.set(`${String(c['kind'])}\u0000${String(c['sender'])}\u0000${String(c['receiver'])}`, `${s['kind']}${ratio}, ${dims(s['from'])} → ${dims(s['to'])}`);
  }
  return out;
}

export function dataRange(values: (number | null)[][][]): [number, number] {
  const all = values.flat(2).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  if (!all.length) return [0, 1];
  const lo = Math.min(...all),
    hi = Math.max(...all);
  return hi > lo ? [lo, hi] : [lo, lo + 1];
}

const num = (v: unknown): string => (typeof v === 'number' ? number(v) : '?');
