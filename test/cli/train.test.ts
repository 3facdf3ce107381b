import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { loadModel } from '../../src/onnx/proto.js';
import { loadCheckpoint } from '../../src/autodiff/checkpoint.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const dir = tempDir();
const ARGS = ['train', 'lenet5', '--data', 'fashion-mnist-sample', '--epochs', '3', '--batch', '64', '--threads', '1', '--seed', '4', '--no-test', '--quiet'];

test('train writes a model and JSON results', () => {
  const out = join(dir, 'a.onnx');
  const r = runCli([...ARGS.slice(0, -1), '--epochs', '1', '-o', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { epochs: { valAccuracy: number }[] };
  assert.equal(j.epochs.length, 1);
  assert.ok(existsSync(out) && existsSync(`${out}.ckpt`) && existsSync(`${out}.metrics.jsonl`));
});

test('a killed run leaves a valid checkpoint, and --resume finishes with the same weights as an uninterrupted run', async () => {
  const straight = join(dir, 'straight.onnx');
  assert.equal(runCli([...ARGS, '-o', straight]).code, 0);

  const out = join(dir, 'killed.onnx');
  const child = spawn(process.execPath, [MAIN, ...ARGS, '-o', out], { stdio: 'ignore' });
  const ckpt = `${out}.ckpt`;
  await new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      if (existsSync(ckpt)) {
        clearInterval(poll);
        // kill it somewhere inside the second epoch
        setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 300);
      } else if (Date.now() - started > 60_000) {
        clearInterval(poll);
        child.kill('SIGKILL');
        reject(new Error('no checkpoint after 60 s'));
      }
    }, 20);
  });
  await new Promise((r) => child.once('exit', r));
  assert.ok(loadCheckpoint(ckpt).epoch >= 1, 'the checkpoint left behind loads');
  assert.ok(!existsSync(out) || loadCheckpoint(ckpt).epoch === 3);
  const r = runCli([...ARGS, '-o', out, '--resume']);
  assert.equal(r.code, 0, r.stderr);
  const a = loadModel(straight).graph.initializers;
  const b = loadModel(out).graph.initializers;
  for (const [name, t] of a) assert.deepEqual(b.get(name)!.data, t.data, name);
});

test('bad training input: one clear line', () => {
  const o = join(dir, 'x.onnx');
  for (const [args, pattern] of [
    [['--freeze', 'zzz*'], /--freeze pattern "zzz\*" matches no parameter/],
    [['--optimizer', 'rmsprop'], /--optimizer/],
    [['--augment', 'rotate'], /--augment/],
    [['--lr', '1e12', '--epochs', '1'], /diverged.*step \d+/],
  ] as [string[], RegExp][]) {
    const r = runCli([...ARGS.filter((a) => a !== '--quiet'), ...args, '-o', o]);
    assert.ok(isOneLineError(r), r.stderr);
    assert.match(r.stderr, pattern);
  }
});
