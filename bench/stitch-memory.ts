/**
 * The memory of a stitching grid, cell by cell: runs the pending cells of a grid folder
 * in this process, in the order a worker runs them, without writing their results (the
 * folder is left as it was, so the measurement can be repeated), and prints after each
 * cell the resident memory now and at its peak so far (VmRSS, VmHWM), the V8 heap, the
 * memory of JavaScript buffers (models, images, cached activations), the cached
 * activations, the ONNX Runtime sessions alive, the CPU time and the cell's seconds.
 *
 * `node --expose-gc dist/bench/stitch-memory.js <grid folder> [--cells N] [--threads N]`
 * Make the folder with `modelsmith stitch A.onnx B.onnx ... -o <folder> --stop-after 1`
 * (its options, data and cuts are the grid's). --expose-gc collects garbage before each
 * reading, so the heap figures are live data, not garbage not yet collected.
 */
import { existsSync, readFileSync } from 'node:fs';
import { StitchGrid, openGridContext } from '../src/stitch/grid.js';
import { CellSessions, runCell } from '../src/stitch/cell.js';
import { setQuiet } from '../src/util/progress.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const dir = args.find((a, i) => !a.startsWith('--') && !args[i - 1]?.startsWith('--'));
if (!dir) throw new Error('usage: node --expose-gc dist/bench/stitch-memory.js <grid folder> [--cells N] [--threads N]');
const cells = opt('--cells', Infinity);
const threads = opt('--threads', 2);
setQuiet(true);

const gb = (bytes: number): string => (bytes / 2 ** 30).toFixed(2);
/** a field of /proc/self/status in bytes (Linux) */
const status = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) * 1024;
const gc = (globalThis as { gc?: () => void }).gc;

const grid = StitchGrid.load(dir);
const f = grid.file;
const ctx = await openGridContext(grid, { threads });
const sessions = new CellSessions();
const start = process.cpuUsage();
console.log(['cell', 'pair', 'seconds', 'rss GB', 'peak rss GB', 'heap GB', 'buffers GB', 'cached GB', 'prefix sessions', 'cell sessions', 'cpu s'].join('\t'));
const row = (label: string, pair: string, seconds: string): void => {
  gc?.();
  const m = process.memoryUsage();
  const cpu = process.cpuUsage(start);
  console.log(
    [
      label,
      pair,
      seconds,
      gb(status('VmRSS')),
      gb(status('VmHWM')),
      gb(m.heapUsed),
      gb(m.arrayBuffers),
      gb(ctx.store.cachedBytes),
      ctx.store.liveSessions,
      sessions.live,
      ((cpu.user + cpu.system) / 1e6).toFixed(0),
    ].join('\t'),
  );
};
row('start', '', '');
let ran = 0;
try {
  for (const c of grid.cells) {
    if (ran >= cells) break;
    if (c.skipped || existsSync(c.file)) continue;
    const pair = { kind: c.kind, sender: f.senders[c.i]!, receiver: f.receivers[c.j]! };
    const r = await runCell(ctx, sessions, pair, f.options);
    ran++;
    row(String(ran), `${c.kind} ${pair.sender.name} -> ${pair.receiver.name}`, r.seconds.toFixed(1));
  }
} finally {
  await sessions.release();
  await ctx.release();
}
row('released', '', '');
