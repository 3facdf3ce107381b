import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the compiled modelsmith CLI in a child process (as a user would). */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): CliResult {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: timeoutMs });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A failure reported as one clear error line (the last thing printed; informational
 * lines such as which data was used may come before it), with no stack trace.
 */
export function isOneLineError(r: CliResult): boolean {
  const lines = r.stderr.trim().split('\n');
  const errors = lines.filter((l) => l.startsWith('modelsmith: error: '));
  return r.code === 1 && errors.length === 1 && lines[lines.length - 1] === errors[0] && !/\n\s+at /.test(r.stderr);
}
