import type { Command } from 'commander';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { startWorker } from '../../queue/worker.js';
import { ownSignals } from '../../util/interrupt.js';
import { globals, withOutputFlags } from './common.js';
import { parsePositiveInt, parsePositiveNumber } from '../parse.js';

interface WorkerFlags {
  queue: string;
  concurrency: number;
  work?: string;
  dataDir: string[];
  maxBlobMb: number;
  lockSeconds: number;
  stallSeconds: number;
  grace?: number;
  name?: string;
}

const collect = (v: string, all: string[]): string[] => [...all, v];

export function registerWorker(program: Command): void {
  withOutputFlags(
    program
      .command('worker')
      .description(
        'take jobs of --queue runs (stitch, cka, lego-experiment, lineage-zoo) from Redis and run them until stopped (SIGTERM: finish the running job, then exit; a second SIGTERM hands it back)',
      ),
  )
    .requiredOption('--queue <url>', 'the Redis URL: redis://host:6379[/db], redis://user:password@host, rediss://... (TLS, ?ca=<CA file>)')
    .option('--concurrency <n>', 'jobs at once', parsePositiveInt('--concurrency'), 1)
    .option('--work <dir>', 'work folder for blobs, caches and job folders (default ~/.cache/modelsmith/worker)')
    .option('--data-dir <dir>', 'a folder whose datasets jobs may name by path (repeatable; default: named datasets only)', collect, [])
    .option('--max-blob-mb <n>', 'largest model a job may bring, MiB', parsePositiveNumber('--max-blob-mb'), 4096)
    .option('--lock-seconds <s>', 'a job whose worker stops renewing its lock this long goes to another worker', parsePositiveNumber('--lock-seconds'), 30)
    .option('--stall-seconds <s>', 'how often stalled jobs are looked for', parsePositiveNumber('--stall-seconds'), 15)
    .option('--grace <s>', 'after SIGTERM, hand the running job back after this many seconds instead of finishing it', parsePositiveNumber('--grace'))
    .option('--name <name>', 'worker name in status and results (default host:pid)')
    .action(async (flags: WorkerFlags, cmd: Command) => {
      const { session } = globals(cmd);
      const w = await startWorker({
        url: flags.queue,
        concurrency: flags.concurrency,
        work: flags.work ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'modelsmith', 'worker'),
        dataDirs: flags.dataDir,
        maxBlobMb: flags.maxBlobMb,
        lockMs: flags.lockSeconds * 1000,
        stallMs: flags.stallSeconds * 1000,
        ...(session.threads ? { threads: session.threads } : {}),
        ...(session.provider && session.provider !== 'cpu' ? { provider: session.provider } : {}),
        ...(flags.name ? { name: flags.name } : {}),
      });
      let signals = 0;
      // handing back leaves the job's computation running in this process: exit right after
      const handBack = (): void => void w.stop(true).then(() => process.exit(0));
      const onSignal = (): void => {
        signals++;
        if (signals > 1) return handBack();
        if (flags.grace) setTimeout(handBack, flags.grace * 1000).unref();
        void w.stop();
      };
      // the CLI's own handlers would exit at once (143): the worker decides when to go
      const release = ownSignals(onSignal);
      try {
        await w.finished;
      } finally {
        release();
        // ONNX Runtime's thread pools may outlive the last job by a moment; the worker is done
        setTimeout(() => process.exit(process.exitCode ?? 0), 2000).unref();
      }
    });
}
