import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packagePath } from '../../src/util/paths.js';

/** Committed test fixtures (fixtures/ at the repository root). */
export const fixture = (...parts: string[]): string => packagePath('fixtures', ...parts);

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix = 'modelsmith-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(d, { recursive: true, force: true }));
  return d;
}
