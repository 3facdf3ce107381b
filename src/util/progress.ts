/**
 * Progress for long operations: a bar with ETA (cli-progress) when stderr is a TTY,
 * plain lines otherwise, nothing when quiet. Progress goes to stderr so that stdout
 * stays clean for --json.
 */
import cliProgress from 'cli-progress';
import { writeErr } from './sinks.js';

export interface Progress {
  /** advance by n units; extra is shown after the bar (e.g. "loss 0.31") */
  tick(n?: number, extra?: string): void;
  done(summary?: string): void;
}

export interface ProgressOptions {
  quiet?: boolean;
  /** seconds between plain lines when not a TTY */
  interval?: number;
}

let globalQuiet = false;
/** The CLI sets this from --quiet/--json so library calls stay silent too. */
export function setQuiet(q: boolean): void {
  globalQuiet = q;
}
export function isQuiet(): boolean {
  return globalQuiet;
}

/** Prints an informational line to stderr unless quiet. */
export function info(message: string): void {
  if (!globalQuiet) writeErr(message + '\n');
}

/** Prints a warning to stderr unless quiet (--quiet and --json print nothing but errors and the result). */
export function warn(message: string): void {
  if (!globalQuiet) writeErr(`warning: ${message}\n`);
}

export function progress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  if (opts.quiet ?? globalQuiet) return { tick() {}, done() {} };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} [{bar}] {percentage}% {value}/{total} eta {eta_formatted} {extra}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { extra: '' });
    let value = 0;
    return {
      tick(n = 1, extra = '') {
        value += n;
        bar.update(value, { extra });
      },
      done(summary) {
        bar.stop();
        if (summary) writeErr(`${label}: ${summary}\n`);
      },
    };
  }
  const start = Date.now();
  const interval = (opts.interval ?? 10) * 1000;
  let last = start;
  let value = 0;
  return {
    tick(n = 1, extra = '') {
      value += n;
      const now = Date.now();
      if (now - last >= interval && value < total) {
        last = now;
        const rate = value / ((now - start) / 1000);
        const eta = rate > 0 ? Math.round((total - value) / rate) : 0;
        writeErr(`${label}: ${value}/${total} (${Math.round((100 * value) / total)}%) eta ${eta}s ${extra}\n`);
      }
    },
    done(summary) {
      const s = ((Date.now() - start) / 1000).toFixed(1);
      writeErr(`${label}: ${value}/${total} in ${s}s${summary ? ` ${summary}` : ''}\n`);
    },
  };
}
