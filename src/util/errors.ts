/**
 * An error caused by the user's input (a file, a flag, a value). The CLI prints its
 * message on one line and exits non-zero, without a stack trace; anything else that
 * escapes is a bug in modelsmith and is printed with its stack.
 *
 * @example
 *   try { openModel('notes.txt'); } catch (e) { if (e instanceof UserError) console.error(e.message); else throw e; }
 */
export class UserError extends Error {
  override readonly name: string = 'UserError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * Names an option in a message: `option` is its key as the TypeScript API spells it
 * (`batchSize`; a dotted path such as `view.labels` for a key inside a data spec), `value`
 * the value the message quotes with it, if any (`true` for a switch that is on).
 */
export type OptionNamer = (option: string, value?: string | number | boolean) => string;

/** The library's own terms: `batchSize`, `flat=class` (as a data spec's view writes `resize=64x64`). */
export const apiName: OptionNamer = (option, value) => (value === undefined ? option : `${option}=${value}`);

/**
 * A UserError about options of a library call. The message is written once, against a
 * namer, so that it names each option in the caller's terms: `message` (what a TypeScript
 * caller reads) names the option keys of the API; the CLI renders the same message with
 * `describe` and its flag table (src/cli/flags.ts), naming the flags. Library code never
 * writes a flag name itself.
 *
 * @example
 *   const e = new OptionError((o) => `${o('batchSize')} must be a positive integer, got 0`);
 *   e.message;                            // "batchSize must be a positive integer, got 0"
 *   e.describe((k) => `--${k}`);          // "--batchSize must be a positive integer, got 0"
 */
export class OptionError extends UserError {
  override readonly name: string = 'OptionError';
  constructor(
    private readonly render: (name: OptionNamer) => string,
    options?: { cause?: unknown },
  ) {
    super(render(apiName), options);
  }

  /** The message with every option named by `name` (the CLI passes its flag names). */
  describe(name: OptionNamer): string {
    return this.render(name);
  }
}

/** The message of `e` with options named by `name` (an OptionError's; any other error's own message). */
export function messageIn(e: Error, name: OptionNamer): string {
  return e instanceof OptionError ? e.describe(name) : e.message;
}

// Option names cross process boundaries (a queue worker's failure, a grid worker's last line)
// marked, so that the receiving side names them in its own caller's terms. The marks are
// control characters, which JSON escapes inside a value.
// eslint-disable-next-line no-control-regex
const MARKED = /\u0001([^\u0001\u0002]{1,300})\u0002/g;

/** The message of `e` to send to another process, an OptionError's options marked for `fromMarked`. */
export function markedMessage(e: Error): string {
  return messageIn(e, (option, value) => `\u0001${JSON.stringify(value === undefined ? [option] : [option, value])}\u0002`);
}

/** A message another process made with `markedMessage`, as an error here: an OptionError when it names options. */
export function fromMarked(text: string): UserError {
  if (!text.includes('\u0001')) return new UserError(text);
  return new OptionError((name) =>
    text.replace(MARKED, (whole, json: string) => {
      try {
        const [option, value] = JSON.parse(json) as unknown[];
        const ok = typeof option === 'string' && (value === undefined || ['string', 'number', 'boolean'].includes(typeof value));
        return ok ? name(option, value as string | number | boolean | undefined) : whole;
      } catch {
        return whole;
      }
    }),
  );
}

/** `e` with `context` written before its message; an OptionError stays one, so the CLI still names its flags. */
export function withContext(context: string, e: UserError): UserError {
  return e instanceof OptionError ? new OptionError((o) => context + e.describe(o), { cause: e }) : new UserError(context + e.message, { cause: e });
}

/** Throws a UserError when the condition is false. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new UserError(typeof message === 'string' ? message : message());
}
