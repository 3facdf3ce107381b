/**
 * The whole `modelsmith stitch` job as one function: open or resume the grid, run the
 * missing cells, write matrix.json and the heatmaps.
 *
 * @example
 *   const r = await stitchGrid({ a: 'a.onnx', b: 'b.onnx', data: 'fashion-mnist', out: 'grid', kinds: [...PAIR_KINDS], workers: 2 });
 *   r.matrix.matrices.accuracy?.trained; // rows: sender cuts, columns: receiver cuts
 */
import { existsSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { StitchGrid, removeGridFiles, type GridRunOptions, type GridSpec } from './grid.js';
import { writeMatrix, type StitchMatrix } from './matrix.js';

export interface StitchJob extends GridSpec, GridRunOptions {
  /** the grid folder */
  out: string;
}

export interface StitchJobResult {
  out: string;
  /** cells computed by this run / found finished from an earlier run */
  ran: number;
  resumed: number;
  matrix: StitchMatrix;
}

/**
 * A stitching grid between two models: every sender cut of A into every receiver cut of B, with the controls; resumable.
 *
 * @example
 *   const r = await stitchGrid({ a: 'a.onnx', b: 'b.onnx', data: 'fashion-mnist', out: 'runs/stitch' });
 *   console.log(r.matrix);
 */
export async function stitchGrid(job: StitchJob): Promise<StitchJobResult> {
  const folderExisted = existsSync(job.out);
  const fresh = !existsSync(join(job.out, 'grid.json'));
  const grid = await StitchGrid.open(job.out, job);
  let ran: number, skipped: number;
  try {
    ({ ran, skipped } = await grid.run(job));
  } catch (e) {
    // a grid this run started that failed before any cell finished leaves no folder behind
    // (else the corrected command would meet "a grid computed with other options")
    if (fresh && grid.done.length === 0) {
      removeGridFiles(job.out);
      if (!folderExisted) {
        try {
          rmdirSync(job.out);
        } catch {
          /* not empty: something else was put there meanwhile */
        }
      }
    }
    throw e;
  }
  const matrix = await writeMatrix(grid, { ...job.session, ...(job.threads && (job.workers ?? 1) === 1 ? { threads: job.threads } : {}) });
  return { out: job.out, ran, resumed: skipped, matrix };
}
