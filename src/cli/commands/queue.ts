import type { Command } from 'commander';
import { cancelRun, clearQueue, queueStatus } from '../../queue/admin.js';
import { globals, withOutputFlags } from './common.js';
import { table } from '../output.js';

export function registerQueue(program: Command): void {
  const queue = program.command('queue').description('inspect and steer the Redis queue of --queue runs');
  withOutputFlags(
    queue
      .command('status <url>')
      .description('jobs waiting, running, done and failed; connected workers and their throughput; runs with work left; recent failures'),
  ).action(async (url: string, _flags: unknown, cmd: Command) => {
    const { out } = globals(cmd);
    const s = await queueStatus(url);
    const c = s.counts;
    out.line(`${s.queue}: ${c.waiting} waiting, ${c.active} running, ${c.delayed} delayed (retry), ${c.completed} done, ${c.failed} failed`);
    if (s.workers.length) {
      out.line(
        table([
          ['worker', 'jobs at once', 'threads', 'done', 'failed', 'jobs/hour', 'running'],
          ...s.workers.map((w) => {
            const hours = Math.max(1e-9, (Date.now() - Date.parse(w.started)) / 3.6e6);
            return [w.name, w.concurrency, w.threads, w.jobs, w.failed, (w.jobs / hours).toFixed(1), w.current.join(', ') || '-'];
          }),
        ]),
      );
    } else {
      out.line('no worker connected (start one with: modelsmith worker --queue <url>)');
    }
    if (s.runs.length)
      out.line(table([['run', 'waiting', 'running', 'done', 'failed'], ...s.runs.map((r) => [r.run, r.waiting, r.active, r.completed, r.failed])]));
    for (const f of s.failures) out.line(`failed: ${f.run} ${f.label}: ${f.reason}`);
    out.json(s);
  });
  withOutputFlags(
    queue
      .command('cancel <url>')
      .description('cancel a run (or every run with work left): its waiting jobs are removed and its coordinator stops; finished results are kept'),
  )
    .option('--run <id>', 'the run to cancel (as printed by its coordinator and by queue status)')
    .action(async (url: string, flags: { run?: string }, cmd: Command) => {
      const { out } = globals(cmd);
      const r = await cancelRun(url, flags.run);
      out.line(r.runs.length ? `cancelled ${r.runs.join(', ')}: ${r.removed} waiting job${r.removed === 1 ? '' : 's'} removed` : 'no run has work left');
      out.json(r);
    });
  withOutputFlags(queue.command('clear <url>').description('remove every job, result and model blob from the queue (refused while jobs run)'))
    .option('--force', 'clear even while jobs run')
    .action(async (url: string, flags: { force?: boolean }, cmd: Command) => {
      const { out } = globals(cmd);
      const r = await clearQueue(url, !!flags.force);
      out.line(`cleared the queue and ${r.blobs} blob key${r.blobs === 1 ? '' : 's'}`);
      out.json(r);
    });
}
