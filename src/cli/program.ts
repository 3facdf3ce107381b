/**
 * The modelsmith command line. Each command is a thin wrapper over a library function;
 * this file only wires commander and turns UserErrors into one-line messages.
 */
import { Command, CommanderError } from 'commander';
import { UserError } from '../util/errors.js';
import { setQuiet } from '../util/progress.js';
import { writeErr, writeOut } from '../util/sinks.js';
import { setInterruptNote } from '../util/interrupt.js';
import { checkProvider, executionProviders } from '../runtime/session.js';
import { parseChoice } from './parse.js';
import { cliMessage } from './flags.js';
import { interruptNote } from './interrupt.js';
import { registerZoo } from './commands/zoo.js';
import { registerInspect } from './commands/inspect.js';
import { registerEval } from './commands/eval.js';
import { registerDemo } from './commands/demo.js';
import { registerExtract } from './commands/extract.js';
import { registerTrain } from './commands/train.js';
import { registerDisassemble } from './commands/disassemble.js';
import { registerLineage } from './commands/lineage.js';
import { registerStitch } from './commands/stitch.js';
import { registerCka } from './commands/cka.js';
import { registerLineageZoo } from './commands/lineage-zoo.js';
import { registerAssemble } from './commands/assemble.js';
import { registerLegoExperiment } from './commands/lego-experiment.js';
import { registerReport } from './commands/report.js';
import { recordCommand } from '../util/provenance.js';
import { registerWorker } from './commands/worker.js';
import { registerQueue } from './commands/queue.js';

export function buildProgram(): Command {
  const program = new Command('modelsmith')
    .description('Work on trained neural networks as ONNX graphs: build, inspect, evaluate, train, disassemble, assemble, stitch, recover lineage.')
    .version('0.1.0')
    .option('--json', 'print only a machine-readable JSON result on stdout')
    .option('--quiet', 'print nothing but errors')
    .option('--threads <n>', 'ONNX Runtime intra-op threads (default: all cores)')
    .option('--provider <name>', `ONNX Runtime execution provider: ${executionProviders().join(', ')}`, parseChoice('--provider', executionProviders()), 'cpu')
    // parse errors are one line plus a hint (see main), not the whole usage text
    .configureOutput({ outputError: () => {}, writeOut, writeErr })
    .exitOverride();
  registerZoo(program);
  registerInspect(program);
  registerEval(program);
  registerExtract(program);
  registerTrain(program);
  registerDisassemble(program);
  registerLineage(program);
  registerStitch(program);
  registerCka(program);
  registerLineageZoo(program);
  registerAssemble(program);
  registerLegoExperiment(program);
  registerWorker(program);
  registerQueue(program);
  registerDemo(program);
  registerReport(program);
  return program;
}

/** A commander parse error, with the command it arose in (for the --help hint). */
class UsageError extends Error {
  constructor(
    readonly error: CommanderError,
    readonly command: string,
  ) {
    super(error.message);
  }
}

const commandPath = (cmd: Command): string => (cmd.parent ? `${commandPath(cmd.parent)} ${cmd.name()}` : cmd.name());

function overrideExits(cmd: Command): void {
  cmd.configureOutput({ outputError: () => {}, writeOut, writeErr });
  cmd.exitOverride((e) => {
    throw new UsageError(e, commandPath(cmd));
  });
  cmd.commands.forEach(overrideExits);
}

/** "error: unknown command 'inspekt'\n(Did you mean inspect?)" -> one line with a pointer to --help */
function usageLine(e: UsageError): string {
  const text = e.error.message
    .replace(/^error: /, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
  return `${text}; see '${e.command} --help'`;
}

/**
 * A message kept to one line whatever it quotes: a parser's error may echo bytes of the
 * file it failed on (line breaks, control characters).
 */
export function oneLine(message: string): string {
  // eslint-disable-next-line no-control-regex
  return message.replace(/\s*[\r\n]+\s*/g, ' ').replace(/[\u0000-\u001f\u007f]/g, '\ufffd');
}

/** Runs the CLI on argv (as process.argv: node, script, ...args) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  recordCommand(argv.slice(2));
  const program = buildProgram();
  overrideExits(program);
  setQuiet(false);
  program.hook('preAction', async (_program, action) => {
    setInterruptNote(() => interruptNote(action.name(), action.opts(), argv.slice(2)));
    const provider = (action.optsWithGlobals() as { provider?: string }).provider;
    // an unusable provider (no CUDA here) is one line before any work, not after it
    if (provider && provider !== 'cpu') await checkProvider(provider);
  });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      // help and version were printed by commander; `modelsmith` alone prints the usage text
      if (e.error.exitCode === 0 || e.error.code === 'commander.help') return e.error.exitCode;
      writeErr(`modelsmith: error: ${usageLine(e)}\n`);
      return 1;
    }
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof UserError) {
      writeErr(`modelsmith: error: ${oneLine(cliMessage(e))}\n`);
      return 1;
    }
    writeErr(`modelsmith: internal error (please report): ${(e as Error)?.stack ?? e}\n`);
    return 2;
  } finally {
    setInterruptNote(undefined);
  }
}
