/**
 * Where modelsmith's text goes: results to stdout, messages and progress to stderr. A
 * test that runs the CLI inside its own process redirects both here (captureOutput)
 * instead of replacing process.stdout.write, which the test runner itself writes through.
 *
 * @example
 *   writeOut('accuracy 91.2%\n');
 *   const { out, err } = await captureOutput(() => main(['node', 'modelsmith', 'inspect', 'm.onnx']));
 */
export interface Sinks {
  out(text: string): void;
  err(text: string): void;
}

let current: Sinks | undefined;

export function writeOut(text: string): void {
  if (current) current.out(text);
  else process.stdout.write(text);
}

export function writeErr(text: string): void {
  if (current) current.err(text);
  else process.stderr.write(text);
}

/** Runs `fn` with modelsmith's stdout and stderr text collected instead of printed (calls must not overlap). */
export async function captureOutput<T>(fn: () => Promise<T>): Promise<{ value: T; out: string; err: string }> {
  if (current) throw new Error('captureOutput calls must not overlap');
  const out: string[] = [],
    err: string[] = [];
  current = {
    out: (t) => {
      out.push(t);
    },
    err: (t) => {
      err.push(t);
    },
  };
  try {
    const value = await fn();
    return { value, out: out.join(''), err: err.join('') };
  } finally {
    current = undefined;
  }
}
