/**
 * The report page: one self-contained HTML file for any mix of run folders.
 *
 * @example
 *   import { writeReport } from 'modelsmith';
 *   await writeReport(['runs/demo'], 'report.html');
 */
export { buildReport, writeReport, writeRunReport, RUN_KINDS, type RunKind, type ReportOptions, type ReportResult } from './report.js';
export { heatmapSpec, type HeatmapData, type CutLabel } from './heatmap.js';
