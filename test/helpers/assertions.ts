import assert from 'node:assert/strict';
import { UserError } from '../../src/util/errors.js';

/** Asserts that f throws a UserError whose message mentions every part (substring or pattern). */
export function assertUserError(f: () => unknown, ...parts: (string | RegExp)[]): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    for (const p of parts) {
      if (typeof p === 'string') assert.ok(e.message.includes(p), `"${e.message}" should mention "${p}"`);
      else assert.match(e.message, p);
    }
    return true;
  });
}
