/**
 * Annotated heatmaps for layer-by-layer matrices (stitching accuracies, CKA): one panel
 * per matrix, side by side, one shared colour scale so panels can be compared by eye,
 * every cell labelled with its value, missing cells grey. SVG from vega-lite (headless),
 * PNG rasterised by resvg.
 *
 * @example
 *   await writeHeatmaps('grid/accuracy', [
 *     { title: 'trained -> trained', rows: ['stem', 'layer1'], cols: ['layer1', 'fc'], values: [[0.9, 0.5], [0.92, null]] },
 *   ], { title: 'R1111 -> R1111', min: 0, max: 1 });   // writes grid/accuracy.svg and grid/accuracy.png
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import { writeFileAtomic } from '../util/atomic.js';
import { warn } from '../util/progress.js';

export interface HeatmapPanel {
  title: string;
  /** row labels (sender cuts), top to bottom */
  rows: string[];
  /** column labels (receiver cuts), left to right */
  cols: string[];
  /** values[row][col]; null (or a non-finite number) is a missing cell */
  values: (number | null)[][];
  rowTitle?: string;
  colTitle?: string;
}

export interface HeatmapOptions {
  title?: string;
  /** colour scale bounds (default: the range of all panels' values) */
  min?: number;
  max?: number;
  /** decimals in the cell annotations (default 2) */
  digits?: number;
  /** title of the colour legend: what the cells measure (default 'value') */
  legend?: string;
}

const CELL_W = 46;
const CELL_H = 26;
const FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';
/** PNG pixels per SVG unit: twice for legible annotations. */
const PNG_SCALE = 2;

interface Cell {
  r: number;
  c: number;
  v: number | null;
  label: string;
  light: boolean;
}

/** Renders the panels to one SVG and its PNG. */
export async function renderHeatmaps(panels: HeatmapPanel[], opts: HeatmapOptions = {}): Promise<{ svg: string; png: Buffer }> {
  if (panels.length === 0) throw new Error('renderHeatmaps: no panels');
  panels.forEach(checkPanel);
  const [lo, hi] = scaleRange(panels, opts);
  const digits = opts.digits ?? 2;
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: { text: opts.title, fontSize: 15, anchor: 'middle' } } : {}),
    background: 'white',
    config: { font: FONT, view: { stroke: null }, axis: { labelFontSize: 11, titleFontSize: 12 } },
    resolve: { scale: { color: 'shared' }, legend: { color: 'shared' } },
    hconcat: panels.map((p) => panelSpec(p, lo, hi, digits, opts.legend ?? 'value')),
  };
  const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  checkFonts();
  const png = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: PNG_SCALE },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
  })
    .render()
    .asPng();
  return { svg, png };
}

/**
 * Writes `<basePath>.svg` and `<basePath>.png` atomically; returns the two paths.
 *
 * @example
 *   await writeHeatmaps('grid/accuracy', [{ title: 'a -> b', rows: ['stem', 'layer1'], cols: ['layer1', 'fc'], values: [[0.9, 0.5], [0.92, null]] }], { min: 0, max: 1 });
 */
export async function writeHeatmaps(basePath: string, panels: HeatmapPanel[], opts: HeatmapOptions = {}): Promise<string[]> {
  const { svg, png } = await renderHeatmaps(panels, opts);
  const paths = [`${basePath}.svg`, `${basePath}.png`];
  writeFileAtomic(paths[0]!, svg);
  writeFileAtomic(paths[1]!, png);
  return paths;
}

function checkPanel(p: HeatmapPanel): void {
  if (p.values.length !== p.rows.length) throw new Error(`heatmap "${p.title}": ${p.values.length} value rows for ${p.rows.length} row labels`);
  p.values.forEach((row, i) => {
    if (row.length !== p.cols.length) throw new Error(`heatmap "${p.title}": row ${i} has ${row.length} values for ${p.cols.length} columns`);
  });
}

/** An axis label of at most LABEL_CHARS characters: the end of a long name, after an ellipsis. */
export function shortLabel(name: string): string {
  return name.length <= LABEL_CHARS ? name : `…${name.slice(name.length - LABEL_CHARS + 1)}`;
}

const LABEL_CHARS = 32;

function isValue(v: number | null): v is number {
  return v !== null && Number.isFinite(v);
}

function scaleRange(panels: HeatmapPanel[], opts: HeatmapOptions): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of panels)
    for (const row of p.values)
      for (const v of row)
        if (isValue(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
  lo = opts.min ?? (Number.isFinite(lo) ? lo : 0);
  hi = opts.max ?? (Number.isFinite(hi) ? hi : 1);
  // A constant matrix still needs a non-empty domain for the colour scale.
  if (!(hi > lo)) hi = lo + 1;
  return [lo, hi];
}

function panelSpec(p: HeatmapPanel, lo: number, hi: number, digits: number, legend: string): object {
  const cells: Cell[] = [];
  p.values.forEach((row, r) =>
    row.forEach((raw, c) => {
      const v = isValue(raw) ? raw : null;
      // viridis is dark at the low end: light text there, dark text on the bright high end.
      const t = v === null ? 0 : (v - lo) / (hi - lo);
      cells.push({ r, c, v, label: v === null ? '–' : v.toFixed(digits), light: v !== null && t <= 0.55 });
    }),
  );
  // Rows and columns are encoded by index (labels may repeat) and named by labelExpr; long
  // names (tensor names) keep their distinguishing end rather than a cut-off start.
  const labels = (names: string[]): string => `${JSON.stringify(names.map(shortLabel))}[datum.value]`;
  const x = {
    field: 'c',
    type: 'ordinal',
    axis: { title: p.colTitle ?? 'receiver cut', labelExpr: labels(p.cols), labelAngle: -40, orient: 'bottom', labelLimit: 0 },
    scale: { domain: p.cols.map((_, i) => i) },
  };
  const y = {
    field: 'r',
    type: 'ordinal',
    axis: { title: p.rowTitle ?? 'sender cut', labelExpr: labels(p.rows), labelLimit: 0 },
    scale: { domain: p.rows.map((_, i) => i) },
  };
  return {
    title: { text: p.title, fontSize: 13 },
    width: Math.max(1, p.cols.length) * CELL_W,
    height: Math.max(1, p.rows.length) * CELL_H,
    data: { values: cells },
    encoding: { x, y },
    layer: [
      // Missing cells get their own grey layer: the colour scale filters null values out.
      {
        transform: [{ filter: 'datum.v === null' }],
        mark: { type: 'rect', fill: '#d0d0d0', stroke: 'white', strokeWidth: 1 },
      },
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          color: {
            field: 'v',
            type: 'quantitative',
            title: legend,
            scale: { scheme: 'viridis', domain: [lo, hi], clamp: true },
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 10 },
        encoding: { text: { field: 'label', type: 'nominal' }, color: { condition: { test: 'datum.light', value: '#fff' }, value: '#111' } },
      },
    ],
  };
}

const FONT_DIRS = ['/usr/share/fonts', '/usr/local/share/fonts', '/System/Library/Fonts', '/Library/Fonts', 'C:\\Windows\\Fonts'];
let fontChecked = false;

/**
 * resvg draws no text at all without a font. System fonts are used when present; when none
 * can be found we say so once (the SVG still carries every annotation).
 */
/** Whether any font file exists in the usual system font folders. */
export function systemFontsAvailable(): boolean {
  return FONT_DIRS.some((d) => hasFontFile(d));
}

function checkFonts(): void {
  if (fontChecked) return;
  fontChecked = true;
  if (!systemFontsAvailable()) warn('no system fonts found (e.g. apt-get install fonts-dejavu-core); heatmap PNGs will lack text, the SVGs have it');
}

function hasFontFile(dir: string, depth = 0): boolean {
  if (!existsSync(dir) || depth > 4) return false;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isFile() && /\.(ttf|otf|ttc)$/i.test(e.name)) return true;
      if (e.isDirectory() && hasFontFile(join(dir, e.name), depth + 1)) return true;
    }
  } catch {
    return false;
  }
  return false;
}
