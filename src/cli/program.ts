/**
 * The modelsmith command line. Each command is a thin wrapper over a library function;
 * this file only wires commander and turns UserErrors into one-line messages.
 */
import { Command, CommanderError } from 'commander';
import { UserError } from '../util/errors.js';
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
    .option('--provider <name>', 'ONNX Runtime execution provider (cpu, cuda, ...)', 'cpu')
    .showHelpAfterError()
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

function overrideExits(cmd: Command): void {
  cmd.exitOverride();
  cmd.commands.forEach(overrideExits);
}

/** Runs the CLI on argv (as process.argv: node, script, ...args) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  recordCommand(argv.slice(2));
  const program = buildProgram();
  overrideExits(program);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (e instanceof UserError) {
      process.stderr.write(`modelsmith: error: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`modelsmith: internal error (please report): ${(e as Error)?.stack ?? e}\n`);
    return 2;
  }
}
