/**
 * Interactive layer-by-layer heatmaps for the report page (vega-lite, drawn in the browser
 * by vega-embed): one panel per pair kind side by side, one shared colour scale with a
 * named legend, every cell's full cut names, value and extra measures on hover. Axis
 * labels are abbreviated and rotated so a 25x25 grid stays readable; the full names are
 * in the tooltip.
 *
 * @example
 *   const { spec, cells } = heatmapSpec({
 *     panels: ['trained -> trained'], rows: [{ name: 'stem' }], cols: [{ name: 'fc' }], values: [[[0.9]]],
 *     measure: { title: 'accuracy', domain: [0, 1], format: pct },
 *   });
 */
import { abbreviate } from './format.js';

export interface CutLabel {
  name: string;
  /** e.g. the tensor and its shape: "layer2.0.relu2, 32x14x14" */
  detail?: string;
}

export interface HeatmapData {
  /** panel titles, left to right (the pair kinds) */
  panels: string[];
  rows: CutLabel[];
  cols: CutLabel[];
  /** values[panel][row][col]; null is a missing cell */
  values: (number | null)[][][];
  measure: { title: string; domain: [number, number]; format: (v: number) => string };
  rowTitle?: string;
  colTitle?: string;
  /** more tooltip lines for a cell: [title, text] */
  extra?: (panel: number, row: number, col: number) => [string, string][];
}

/** Pixels per cell by the grid's larger side: big enough to read a value, small enough for 25x25 x 4 panels. */
const CELL_SIZES: [number, number][] = [
  [8, 40],
  [14, 28],
  [Infinity, 18],
];
/** Smallest cell before panels wrap onto a second row. */
const MIN_CELL = 14;
/** Page width the panels fit in, and what a row of panels needs besides cells: row labels, legend, gaps. */
const PAGE_WIDTH = 1100;
const FIXED_WIDTH = 170;
const PANEL_GAP = 24;

/** Cell size and panels per row: all panels side by side when cells can stay readable, else wrapped. */
function layout(panels: number, rows: number, cols: number): { cell: number; columns: number } {
  const wanted = CELL_SIZES.find(([upTo]) => Math.max(rows, cols) <= upTo)![1];
  const fit = (columns: number): number => Math.min(wanted, Math.floor((PAGE_WIDTH - FIXED_WIDTH - columns * PANEL_GAP) / (columns * Math.max(1, cols))));
  let columns = Math.max(1, panels);
  while (columns > 1 && fit(columns) < MIN_CELL) columns = Math.ceil(columns / 2);
  return { cell: Math.max(MIN_CELL, fit(columns)), columns };
}
const MISSING = '#d0d0d0';

/** The vega-lite spec and the number of cells it draws. */
export function heatmapSpec(d: HeatmapData): { spec: object; cells: number } {
  const [lo, hi] = d.measure.domain;
  const { cell, columns } = layout(d.panels.length, d.rows.length, d.cols.length);
  const annotate = cell >= 28;
  const rowLabels = abbreviate(d.rows.map((r) => r.name));
  const colLabels = abbreviate(d.cols.map((c) => c.name));
  const extraTitles: string[] = [];
  const values: Record<string, unknown>[] = [];
  d.panels.forEach((panel, p) =>
    d.rows.forEach((row, r) =>
      d.cols.forEach((col, c) => {
        const raw = d.values[p]?.[r]?.[c];
        const v = typeof raw === 'number' && Number.isFinite(raw) ? raw : null;
        const t = v === null ? 0 : (v - lo) / (hi - lo || 1);
        const datum: Record<string, unknown> = {
          panel,
          r,
          c,
          v,
          shade: v ?? lo,
          light: v !== null && t <= 0.55,
          label: v === null ? '' : v.toFixed(2),
          sender: full(row),
          receiver: full(col),
          pair: panel,
          value: v === null ? 'missing' : d.measure.format(v),
        };
        for (const [title, text] of d.extra?.(p, r, c) ?? []) {
          let i = extraTitles.indexOf(title);
          if (i < 0) i = extraTitles.push(title) - 1;
          datum[`x${i}`] = text;
        }
        values.push(datum);
      }),
    ),
  );
  const names = (labels: string[]): string => `${JSON.stringify(labels)}[datum.value]`;
  const longest = Math.max(...colLabels.map((l) => l.length));
  const tooltip = [
    { field: 'sender', title: d.rowTitle ?? 'sender cut' },
    { field: 'receiver', title: d.colTitle ?? 'receiver cut' },
    { field: 'value', title: d.measure.title },
    { field: 'pair', title: 'pair' },
    ...extraTitles.map((title, i) => ({ field: `x${i}`, title })),
  ].map((t) => ({ ...t, type: 'nominal' }));
  const layer: object[] = [
    {
      name: 'cells',
      mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
      encoding: {
        color: {
          condition: { test: 'datum.v === null', value: MISSING },
          field: 'shade',
          type: 'quantitative',
          title: d.measure.title,
          scale: { scheme: 'viridis', domain: [lo, hi], clamp: true },
          legend: { orient: 'right', gradientLength: Math.min(220, Math.max(120, d.rows.length * cell)) },
        },
        tooltip,
      },
    },
  ];
  if (annotate) {
    layer.push({
      mark: { type: 'text', fontSize: cell >= 40 ? 11 : 9 },
      encoding: { text: { field: 'label', type: 'nominal' }, color: { condition: { test: 'datum.light', value: '#fff' }, value: '#111' }, tooltip },
    });
  }
  const width = d.cols.length * cell;
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    columns,
    facet: { field: 'panel', type: 'nominal', sort: d.panels, title: null, header: { labelFontSize: 13, labelFontWeight: 'bold' } },
    spec: {
      width,
      height: d.rows.length * cell,
      encoding: {
        x: {
          field: 'c',
          type: 'ordinal',
          scale: { domain: d.cols.map((_, i) => i) },
          axis: { title: d.colTitle ?? 'receiver cut', labelExpr: names(colLabels), labelAngle: longest * 6 > cell ? -45 : 0, labelLimit: 160 },
        },
        y: {
          field: 'r',
          type: 'ordinal',
          scale: { domain: d.rows.map((_, i) => i) },
          axis: { title: d.rowTitle ?? 'sender cut', labelExpr: names(rowLabels), labelLimit: 160 },
        },
      },
      layer,
    },
    resolve: { scale: { color: 'shared' }, axis: { x: 'independent' } },
    config: { view: { stroke: null }, axis: { labelFontSize: 11, titleFontSize: 12 } },
  };
  return { spec, cells: values.length };
}

function full(c: CutLabel): string {
  return c.detail ? `${c.name} (${c.detail})` : c.name;
}
