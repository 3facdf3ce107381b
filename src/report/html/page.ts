/**
 * The report page: sections (one per run folder or part of one), each with its provenance
 * block, charts as vega-lite specs in one inline JSON block drawn by the inlined vega
 * bundles, and a Content-Security-Policy that forbids every network request, so the
 * single file shows the same thing on any machine, offline.
 *
 * @example
 *   const page = new Page();
 *   const body = `<p>...</p>${page.chart(spec)}`;
 *   const html = page.render([{ id: 's1', title: 'Stitching', kind: 'stitch', source: 'grid/', provenance: null, body }], { title: 'report' });
 */
import type { Provenance } from '../../util/provenance.js';
import { inlineScripts, jsonText } from './assets.js';
import { esc } from './format.js';

export interface Section {
  id: string;
  title: string;
  /** what kind of run it shows (stitch grid, CKA, ...) */
  kind: string;
  /** the folder or file it was read from */
  source: string;
  /** the run's provenance block; null when the files do not record one */
  provenance: Record<string, unknown> | null;
  /** where the provenance came from when not from this section's own file */
  provenanceNote?: string;
  body: string;
}

export interface PageOptions {
  title: string;
  /** provenance of the report itself (who made the page, when) */
  made?: Provenance;
}

/** Charts of one page: each gets a container element and a spec in the page's JSON block. */
export class Page {
  private readonly specs: Record<string, object> = {};
  private next = 0;

  /** A container for the chart. `cells`: a heatmap's cell count, which the page records for checks. */
  chart(spec: object, opts: { cells?: number; label?: string } = {}): string {
    const id = `chart-${++this.next}`;
    this.specs[id] = spec;
    const attrs = opts.cells !== undefined ? ` data-heatmap="true" data-cells="${opts.cells}"` : '';
    return `<div class="chart" id="${id}"${attrs}${opts.label ? ` aria-label="${esc(opts.label)}"` : ''}></div>`;
  }

  render(sections: readonly Section[], opts: PageOptions): string {
    const toc = sections.map((s) => `<li><a href="#${esc(s.id)}">${esc(s.title)}</a> <span class="kind">${esc(s.kind)}</span></li>`).join('');
    return [
      '<!doctype html>',
      '<html lang="en"><head><meta charset="utf-8">',
      // Nothing may be fetched: inline scripts and styles only; data: for the charts' own PNG/SVG export links.
      `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:">`,
      '<meta name="viewport" content="width=device-width, initial-scale=1">',
      `<title>${esc(opts.title)}</title>`,
      `<style>${CSS}</style>`,
      '</head><body>',
      `<header><h1>${esc(opts.title)}</h1>`,
      `<p class="made">${sections.length} section${sections.length === 1 ? '' : 's'}` +
        `${opts.made ? `; page made ${esc(opts.made.date)} by modelsmith ${esc(opts.made.modelsmith)}` : ''}. ` +
        "Hover a heatmap cell or a point for its details; each chart's menu (…) saves it as SVG or PNG.</p>",
      `<nav><ol>${toc}</ol></nav></header>`,
      '<main>',
      ...sections.map(renderSection),
      '</main>',
      `<script type="application/json" id="report-charts">${jsonText(this.specs)}</script>`,
      inlineScripts(),
      `<script>${CLIENT}</script>`,
      '</body></html>',
    ].join('\n');
  }
}

function renderSection(s: Section): string {
  return [
    `<section id="${esc(s.id)}" data-kind="${esc(s.kind)}">`,
    `<h2>${esc(s.title)}</h2>`,
    `<p class="source">${esc(s.kind)} · <code>${esc(s.source)}</code></p>`,
    provenanceBlock(s.provenance, s.provenanceNote),
    s.body,
    '</section>',
  ].join('\n');
}

/** The provenance fields in reading order, each with how it shows. */
const PROVENANCE_ROWS: [string, (p: Record<string, unknown>) => unknown][] = [
  ['modelsmith', (p) => p['modelsmith']],
  ['ONNX Runtime', (p) => p['onnxruntime']],
  ['Node.js', (p) => p['node']],
  [
    'CPU',
    (p) => {
      const c = p['cpu'] as { model?: unknown; cores?: unknown } | undefined;
      return c && typeof c === 'object' ? `${String(c.model)} (${String(c.cores)} logical cores)` : undefined;
    },
  ],
  [
    'threads',
    (p) => (Array.isArray(p['threads']) ? (p['threads'].length ? `${p['threads'].join(', ')} (ONNX Runtime intra-op)` : 'no ONNX Runtime session') : undefined),
  ],
  ['command', (p) => p['command']],
  ['working folder', (p) => p['cwd']],
  ['data', (p) => (Array.isArray(p['data']) ? (p['data'].length ? p['data'].join('\n') : 'none') : p['data'])],
  [
    'git commit',
    (p) => {
      const g = p['git'] as { commit?: unknown; dirty?: unknown } | null | undefined;
      return g === null
        ? 'not run from a git checkout'
        : g && typeof g === 'object'
          ? `${String(g.commit)}${g.dirty ? ' (with uncommitted changes)' : ''}`
          : undefined;
    },
  ],
  ['date', (p) => p['date']],
];

function provenanceBlock(p: Record<string, unknown> | null, note?: string): string {
  if (!p) {
    const why = note ?? 'These result files carry no provenance block (written by an earlier modelsmith).';
    return `<details class="provenance"><summary>Provenance: not recorded</summary><p>${esc(why)}</p></details>`;
  }
  const rows = PROVENANCE_ROWS.map(([k, get]) => [k, get(p)] as const).filter(([, v]) => v !== undefined && v !== null && v !== '');
  const brief = [p['modelsmith'] && `modelsmith ${String(p['modelsmith'])}`, p['date'] && String(p['date'])].filter(Boolean).join(', ');
  return [
    `<details class="provenance"><summary>Provenance: ${esc(brief)}${note ? ` <span class="note">(${esc(note)})</span>` : ''}</summary>`,
    `<table class="fields">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${k === 'command' ? `<code>${esc(v)}</code>` : esc(v)}</td></tr>`).join('')}` +
      '</table>',
    '</details>',
  ].join('');
}

const CSS = `
:root { --fg: #1d2330; --muted: #5b6474; --line: #dde2ea; --bg: #fff; --accent: #2c5aa0; --soft: #f5f7fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; color: var(--fg); background: var(--bg); }
header, main { max-width: 1240px; margin: 0 auto; }
header { padding: 20px 24px 0; }
header { border-bottom: 1px solid var(--line); }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 2px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.made, .source, .note, .kind { color: var(--muted); }
.source { margin: 0 0 8px; font-size: 12px; }
nav ol { columns: 2; margin: 8px 0 16px; padding-left: 22px; }
nav .kind { font-size: 12px; }
section { padding: 18px 24px 26px; border-bottom: 1px solid var(--line); background: var(--bg); }
a { color: var(--accent); }
code { font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, monospace; word-break: break-all; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
caption { text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; white-space: pre-line; }
thead th { background: var(--soft); font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
table.fields th { font-weight: 600; color: var(--muted); background: none; white-space: nowrap; }
details.provenance { margin: 4px 0 12px; background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 4px 10px; }
details.provenance summary { cursor: pointer; color: var(--muted); }
details.provenance table { margin: 6px 0; }
.chart { margin: 8px 0 12px; overflow-x: auto; }
.chart[data-error] { color: #b00020; }
.legend { display: flex; gap: 18px; flex-wrap: wrap; color: var(--muted); font-size: 13px; margin: 6px 0; }
.legend svg { vertical-align: middle; margin-right: 4px; }
.forest { overflow-x: auto; margin: 6px 0 12px; }
.forest svg { max-width: 100%; height: auto; }
.summary { margin: 4px 0 10px; }
#vg-tooltip-element table { margin: 0; }
#vg-tooltip-element td { white-space: normal; border: 0; padding: 1px 4px; }
`;

/** Draws every chart; marks the page `data-charts="done"` when all have finished (drawn or failed). */
const CLIENT = `
(function () {
  var specs = JSON.parse(document.getElementById('report-charts').textContent);
  var options = { renderer: 'svg', ast: true, actions: { export: true, source: false, compiled: false, editor: false }, tooltip: { theme: 'light' } };
  var jobs = Object.keys(specs).map(function (id) {
    var el = document.getElementById(id);
    return vegaEmbed(el, specs[id], options).then(function () { el.setAttribute('data-rendered', 'true'); }, function (e) {
      el.setAttribute('data-error', String(e && e.message || e));
      el.textContent = 'This chart could not be drawn: ' + (e && e.message || e);
      console.error('chart ' + id + ': ' + (e && e.message || e));
    });
  });
  Promise.all(jobs).then(function () { document.body.setAttribute('data-charts', 'done'); });
})();
`;
