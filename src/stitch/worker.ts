/**
 * A grid worker process: `node worker.js <grid dir> [--threads N] [--provider P]
 * [--stop-after N] [--quiet]`. Started by StitchGrid.run for --workers > 1; claims rows
 * of the grid in grid.json until none is left.
 */
import { StitchGrid, runWorker } from './grid.js';
import { setQuiet } from '../util/progress.js';
import { markedMessage, UserError } from '../util/errors.js';
import { installProcessHandlers } from '../util/interrupt.js';

// Ctrl-C reaches the workers too: they stop between two cells' writes, and the parent says what was saved
installProcessHandlers({ silent: true });

async function main(argv: string[]): Promise<number> {
  const dir = argv[0];
  const flag = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (!dir) throw new UserError('worker: missing grid folder');
  setQuiet(argv.includes('--quiet'));
  const threads = Number(flag('--threads') ?? 1);
  const stop = flag('--stop-after');
  const provider = flag('--provider');
  await runWorker(StitchGrid.load(dir), { session: { threads, ...(provider ? { provider } : {}) }, ...(stop ? { stopAfter: Number(stop) } : {}) });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    // marked: the parent names the options of an OptionError in its caller's terms
    if (e instanceof UserError) process.stderr.write(`modelsmith: error: ${markedMessage(e)}\n`);
    else process.stderr.write(`modelsmith: internal error (please report): ${(e as Error)?.stack ?? e}\n`);
    process.exit(e instanceof UserError ? 1 : 2);
  },
);
