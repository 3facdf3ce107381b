/**
 * An error caused by the user's input (a file, a flag, a value). The CLI prints its
 * message on one line and exits non-zero, without a stack trace; anything else that
 * escapes is a bug in modelsmith and is printed with its stack.
 *
 * @example
 *   try { openModel('notes.txt'); } catch (e) { if (e instanceof UserError) console.error(e.message); else throw e; }
 */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Throws a UserError when the condition is false. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new UserError(typeof message === 'string' ? message : message());
}
