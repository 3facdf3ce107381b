/**
 * The whole `modelsmith stitch` job as one function: open or resume the grid, run the
 * missing cells, write matrix.json and the heatmaps.
 *
 * @example
 *   const r = await stitchGrid({ a: 'a.onnx', b: 'b.onnx', data: 'fashion-mnist', out: 'grid', kinds: [...PAIR_KINDS], workers: 2 });
 *   r.matrix.matrices.accuracy?.trained; // rows: sender cuts, columns: receiver cuts
 */
import { StitchGrid, type GridRunOptions, type GridSpec } from './grid.js';
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

export async function stitchGrid(job: StitchJob): Promise<StitchJobResult> {
  const grid = await StitchGrid.open(job.out, job);
  const { ran, skipped } = await grid.run(job);
  const matrix = await writeMatrix(grid, { ...job.session, ...(job.threads && (job.workers ?? 1) === 1 ? { threads: job.threads } : {}) });
  return { out: job.out, ran, resumed: skipped, matrix };
}
