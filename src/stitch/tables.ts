/**
 * Stitching and CKA results as text: what `modelsmith stitch` and `modelsmith cka` print,
 * for a TypeScript caller to print the same way. Options are named by an OptionNamer (the
 * API's keys by default; the CLI passes its flags).
 */
import type { Model } from '../onnx/types.js';
import { hasRecordedCuts } from '../onnx/cuts.js';
import { apiName, type OptionNamer } from '../util/errors.js';
import { pct, table } from '../util/format.js';
import { allCuts, describeShape, listCuts, type StitchCut } from './cuts.js';
import { PAIR_TITLES } from './controls.js';
import type { StitchJobResult } from './run.js';
import type { CkaGridResult } from './cka-grid.js';

/** A model's default cut points (the grid's rows or columns) and every valid cut. */
export interface CutListing {
  file: string;
  /** the cuts are recorded in the model's metadata (else block-level cuts found in the graph) */
  recorded: boolean;
  cuts: StitchCut[];
  valid: StitchCut[];
}

/**
 * The cut points a stitching grid uses by default, and every valid cut of the model.
 *
 * @example
 *   const l = describeCuts(openModel('r18.onnx'), 'r18.onnx');
 *   console.log(l.cuts.map((c) => c.name)); // ['stem', 'layer1.0', ...]
 */
export function describeCuts(model: Model, file: string): CutListing {
  return { file, recorded: hasRecordedCuts(model), cuts: listCuts(model, file), valid: allCuts(model, file) };
}

/**
 * A cut listing as text: the default cuts with kind, shape and tensor, then the other valid cuts.
 *
 * @example console.log(cutListingText(describeCuts(openModel('r18.onnx'), 'r18.onnx')));
 */
export function cutListingText(m: CutListing, name: OptionNamer = apiName): string {
  const shape = (c: StitchCut): string => {
    const notes = [...(c.batchAxis ? [`batch axis ${c.batchAxis}`] : []), ...(c.channelAxis !== undefined ? ['channels last'] : [])];
    return `${describeShape(c.shape)}${notes.length ? ` (${notes.join(', ')})` : ''}`;
  };
  const lines = [
    `${m.file}: ${m.cuts.length} ${m.recorded ? 'recorded' : 'block-level'} cut points (the default grid), ${m.valid.length} valid cuts in all`,
    table([['cut', 'kind', 'shape', 'tensor'], ...m.cuts.map((c) => [c.name, c.kind, shape(c), c.tensor])]),
  ];
  const others = m.valid.filter((v) => !m.cuts.some((c) => c.tensor === v.tensor));
  if (others.length) {
    lines.push(`other valid cuts (name them by tensor with ${name('senders')}/${name('receivers')}):`);
    lines.push(table([['tensor', 'shape'], ...others.map((c) => [c.tensor, shape(c)])]));
  }
  return lines.join('\n');
}

/**
 * A stitching grid's result as text: one accuracy table per kind of pair (rows: sender cuts,
 * columns: receiver cuts) with its triangle means, the networks' own accuracy, and how many
 * cells are done. `files` names the two models as the caller gave them.
 *
 * @example
 *   const r = await stitchGrid({ a: 'a.onnx', b: 'b.onnx', data: 'fashion-mnist', out: 'grid' });
 *   console.log(stitchGridText(r, { a: 'a.onnx', b: 'b.onnx' }));
 */
export function stitchGridText(r: StitchJobResult, files: { a: string; b: string } = r.matrix): string {
  const m = r.matrix;
  const lines: string[] = [];
  const fmt = (v: number | null): string => (v === null ? '-' : pct(v));
  for (const kind of m.kinds) {
    const values = m.matrices.accuracy?.[kind];
    if (!values) continue;
    lines.push(`${PAIR_TITLES[kind]} (rows: sender cuts of ${files.a}; columns: receiver cuts of ${files.b})`);
    lines.push(table([['', ...m.receivers], ...m.senders.map((s, i) => [s, ...values[i]!.map(fmt)])]));
    const t = m.triangles[kind];
    if (t) lines.push(`mean accuracy: lower-left triangle ${fmt(t.lowerLeft)}, elsewhere ${fmt(t.elsewhere)}`);
    lines.push('');
  }
  lines.push(
    `networks' own test accuracy: ${Object.entries(m.base)
      .map(([k, v]) => `${k} ${pct(v)}`)
      .join(', ')}`,
  );
  lines.push(
    `${r.ran} cells computed now, ${r.resumed} found finished; ${m.cells.done}/${m.cells.total} done${m.complete ? '' : ' (rerun the same command to continue)'}`,
  );
  return lines.join('\n');
}

/**
 * A CKA grid as text: the matrix of the main estimator (rows: sender cuts, columns:
 * receiver cuts) and the triangle means of each kind of pair.
 *
 * @example console.log(ckaGridText(await computeCkaGrid(a, b, ds)));
 */
export function ckaGridText(r: CkaGridResult): string {
  const pooled = r.pool === 'none' ? '' : `, pooled: ${r.pool}`;
  const fmt = (v: number | null): string => (v === null ? '-' : v.toFixed(3));
  return [
    `linear CKA (${r.estimator}${pooled}), ${r.samples} ${r.split} images; rows: ${r.a} sender cuts, columns: ${r.b} receiver cuts`,
    table([['', ...r.receivers], ...r.senders.map((s, i) => [s, ...r.values[i]!.map(fmt)])]),
    ...r.kinds.map((kind) => {
      const t = r.triangles[r.estimator][kind]!;
      return `${kind}: mean CKA lower-left triangle ${fmt(t.lowerLeft)}, elsewhere ${fmt(t.elsewhere)}`;
    }),
  ].join('\n');
}
