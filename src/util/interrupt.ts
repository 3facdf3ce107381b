/**
 * How a modelsmith process ends when it is told to stop or its reader goes away:
 * Ctrl-C (SIGINT) and SIGTERM print one line saying what was saved and how to go on,
 * run the registered clean-ups (e.g. stop worker processes) and exit with the
 * conventional 128 + signal number (130, 143); a closed stdout (`modelsmith eval ... |
 * head`) is not an error: the rest of the output is dropped and the command ends normally.
 *
 * Every file modelsmith writes is written synchronously into a temp file and renamed
 * (src/util/atomic.ts, src/io/atomic-stream.ts), and a signal handler only runs between
 * two JavaScript tasks, so exiting from the handler never leaves a half-written file.
 *
 * @example
 *   installProcessHandlers();                        // once, in the CLI entry point
 *   setInterruptNote(() => 'checkpoint m.onnx.ckpt after epoch 3; resume with: modelsmith train ... --resume');
 *   const forget = onInterrupt(() => child.kill());  // until the child is done
 */

const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof SIGNAL_CODES;

let note: (() => string | undefined) | undefined;
let owner: ((signal: StopSignal) => void) | undefined;
const cleanups = new Set<() => void>();
let installed = false;
let stopping = false;

/** What the interrupt line says after "interrupted by SIGINT": computed when the signal comes. */
export function setInterruptNote(fn: (() => string | undefined) | undefined): void {
  note = fn;
}

/**
 * Hands SIGINT/SIGTERM to `handler` instead of stopping the process (a worker finishes its
 * running job first); returns a function that gives them back.
 */
export function ownSignals(handler: (signal: StopSignal) => void): () => void {
  installProcessHandlers();
  owner = handler;
  return () => {
    if (owner === handler) owner = undefined;
  };
}

/** Runs `cleanup` if the process is interrupted; returns a function that unregisters it. */
export function onInterrupt(cleanup: () => void): () => void {
  cleanups.add(cleanup);
  return () => {
    cleanups.delete(cleanup);
  };
}

/** The line printed on an interrupt (exported for tests). */
export function interruptMessage(signal: StopSignal): string {
  let text: string | undefined;
  try {
    text = note?.();
  } catch (e) {
    text = `(could not tell what was saved: ${(e as Error)?.message ?? e})`;
  }
  return `modelsmith: interrupted by ${signal}${text ? `; ${text}` : ''}`;
}

export function exitCodeOf(signal: StopSignal): number {
  return SIGNAL_CODES[signal];
}

export interface HandlerOptions {
  /** exit without a message (worker processes: the parent speaks for them) */
  silent?: boolean;
}

/** Installs the signal and broken-pipe handlers (once per process; the CLI and worker entry points call it). */
export function installProcessHandlers(opts: HandlerOptions = {}): void {
  if (installed) return;
  installed = true;
  for (const signal of Object.keys(SIGNAL_CODES) as StopSignal[]) {
    process.on(signal, () => stop(signal, opts));
  }
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      // the reader is gone (`| head`): drop the rest of the output quietly
      if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') return;
      if (stream !== process.stderr) process.stderr.write(`modelsmith: error: cannot write the output: ${e.message}\n`);
      process.exitCode = 1;
    });
  }
}

function stop(signal: StopSignal, opts: HandlerOptions): void {
  if (owner) return owner(signal);
  const code = exitCodeOf(signal);
  if (stopping) process.exit(code); // a second Ctrl-C while cleaning up: go at once
  stopping = true;
  for (const c of cleanups) {
    try {
      c();
    } catch {
      /* best effort: we are exiting */
    }
  }
  if (!opts.silent) {
    // a progress bar may have hidden the cursor and left the line unfinished
    const tty = process.stderr.isTTY ? '\x1b[?25h\n' : '';
    try {
      process.stderr.write(`${tty}${interruptMessage(signal)}\n`);
    } catch {
      /* stderr gone */
    }
  }
  process.exit(code);
}
