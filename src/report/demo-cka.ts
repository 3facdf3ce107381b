/**
 * The demo's CKA step: linear CKA between two of the demo's trained models (with the random
 * controls), written next to the stitching grid so the two measures can be compared.
 *
 * @example
 *   const test = await openDataset('fashion-mnist-sample', 'test');
 *   const r = await runCkaDemo('runs/demo/models/resnet1111-w0.25.onnx', 'runs/demo/models/resnet1111-w0.25.onnx', test, 'runs/demo/cka');
 *   r.markdown; // a section for report.md
 */
import { basename } from 'node:path';
import type { Dataset } from '../data/types.js';
import { openModel } from '../onnx/open.js';
import type { SessionOptions } from '../runtime/session.js';
import { computeCkaGrid, writeCkaGrid, type CkaGridResult } from '../stitch/cka-grid.js';

export interface CkaDemoResult {
  result: CkaGridResult;
  files: string[];
  /** a report.md section: the trained pair's matrix and the triangle means of every pair kind */
  markdown: string;
}

export async function runCkaDemo(
  fileA: string,
  fileB: string,
  test: Dataset,
  outDir: string,
  opts: SessionOptions & { samples?: number; seed?: number } = {},
): Promise<CkaDemoResult> {
  const result = await computeCkaGrid({ model: openModel(fileA), file: fileA }, { model: openModel(fileB), file: fileB }, test, {
    ...opts,
    samples: opts.samples ?? 500,
    controls: true,
  });
  const files = await writeCkaGrid(result, outDir);
  return { result, files, markdown: ckaMarkdown(result, outDir) };
}

/** The trained pair's biased CKA matrix as a markdown table, with the triangle means; links are relative to outDir's parent (where report.md is). */
export function ckaMarkdown(r: CkaGridResult, outDir: string): string {
  const rel = basename(outDir);
  const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(2));
  const lines = [
    `## Linear CKA: ${r.a} -> ${r.b}`,
    '',
    `${r.samples} ${r.split} images; rows: sender cuts of A, columns: receiver cuts of B; biased estimator (debiased and controls in ${rel}/matrix.json).`,
    '',
    `| | ${r.receivers.join(' | ')} |`,
    `|---|${r.receivers.map(() => '---').join('|')}|`,
    ...r.senders.map((s, i) => `| ${s} | ${r.matrices.biased.trained![i]!.map(fmt).join(' | ')} |`),
    '',
    '| pair | lower-left triangle (biased) | elsewhere (biased) | lower-left (debiased) | elsewhere (debiased) |',
    '|---|---|---|---|---|',
    ...r.kinds.map(
      (k) =>
        `| ${k} | ${fmt(r.triangles.biased[k]!.lowerLeft)} | ${fmt(r.triangles.biased[k]!.elsewhere)} | ${fmt(r.triangles.debiased[k]!.lowerLeft)} | ${fmt(r.triangles.debiased[k]!.elsewhere)} |`,
    ),
    '',
    `![CKA](${rel}/cka.png)`,
    '',
  ];
  return lines.join('\n');
}
