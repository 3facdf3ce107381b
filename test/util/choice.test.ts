import { test } from 'node:test';
import assert from 'node:assert/strict';
import { oneOf } from '../../src/util/choice.js';
import { UserError } from '../../src/util/errors.js';

const MODES = ['task', 'lsq', 'copy'] as const;

test('oneOf returns a listed value and refuses others, naming what, the choices and the value', () => {
  assert.equal(oneOf('lsq', '--mode', MODES), 'lsq');
  assert.throws(
    () => oneOf('lora', '--mode', MODES),
    (e: unknown) => e instanceof UserError && e.message === '--mode expects task, lsq or copy, got "lora"',
  );
  assert.throws(
    () => oneOf(3, 'payload.mode', MODES),
    (e: unknown) => e instanceof UserError && e.message === 'payload.mode expects task, lsq or copy, got 3',
  );
});
