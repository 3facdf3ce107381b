import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSchedule, type ScheduleConfig } from '../../src/autodiff/schedule.js';
import { UserError } from '../../src/util/errors.js';

function assertValues(config: ScheduleConfig, total: number, expected: number[]): void {
  const s = createSchedule(config, total);
  const got = expected.map((_, i) => s(i));
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(got[i]! - expected[i]!) <= 1e-12, `${JSON.stringify(config)} step ${i}: ${got[i]} vs ${expected[i]} (all: ${got.join(', ')})`);
  }
}

test('constant, with and without linear warm-up', () => {
  assertValues({ kind: 'constant', lr: 0.1 }, 6, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]);
  // warm-up reaches the full rate on its last step: lr * (s + 1) / W
  assertValues({ kind: 'constant', lr: 0.1, warmupSteps: 4 }, 6, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1]);
});

test('step decay every stepSize steps and at milestones', () => {
  assertValues({ kind: 'step', lr: 1, stepSize: 3, gamma: 0.5 }, 8, [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]);
  assertValues({ kind: 'step', lr: 2, milestones: [2, 5] }, 7, [2, 2, 0.2, 0.2, 0.2, 0.02, 0.02]);
  // the main schedule counts from the end of warm-up (SequentialLR)
  assertValues({ kind: 'step', lr: 1, stepSize: 2, gamma: 0.5, warmupSteps: 2 }, 8, [0.5, 1, 1, 1, 0.5, 0.5, 0.25, 0.25]);
});

test('cosine goes from lr to minLr over the steps after warm-up, as CosineAnnealingLR', () => {
  const c = (t: number, T: number, lr = 0.1, min = 0.01): number => min + ((lr - min) * (1 + Math.cos((Math.PI * t) / T))) / 2;
  assertValues({ kind: 'cosine', lr: 0.1, minLr: 0.01 }, 4, [0.1, c(1, 4), 0.055, c(3, 4), 0.01, 0.01]);
  assert.ok(Math.abs(c(1, 4) - 0.0868198) < 1e-7 && Math.abs(c(3, 4) - 0.0231802) < 1e-7, 'hand values');
  assertValues({ kind: 'cosine', lr: 0.1, minLr: 0.01, warmupSteps: 2 }, 6, [0.05, 0.1, 0.1, c(1, 4), 0.055, c(3, 4), 0.01]);
  // without lr the schedule is a multiplier of the caller's rate
  assertValues({ kind: 'cosine' }, 10, [1, c(1, 10, 1, 0), c(2, 10, 1, 0), c(3, 10, 1, 0), c(4, 10, 1, 0), 0.5]);
  assertValues({ kind: 'cosine', lr: 0.3, warmupSteps: 3 }, 3, [0.1, 0.2, 0.3, 0.3]);
});

test('bad schedule settings are refused', () => {
  const bad = (config: ScheduleConfig, total: number, part: RegExp): void => {
    assert.throws(
      () => createSchedule(config, total),
      (e) => e instanceof UserError && part.test(e.message),
    );
  };
  bad({ kind: 'constant', warmupSteps: 11 }, 10, /warmupSteps/);
  bad({ kind: 'constant' }, 0, /positive integer/);
  bad({ kind: 'constant', lr: -1 }, 10, /lr/);
  bad({ kind: 'step' }, 10, /exactly one of stepSize and milestones/);
  bad({ kind: 'step', stepSize: 2, milestones: [3] }, 10, /exactly one/);
  bad({ kind: 'step', stepSize: 0 }, 10, /stepSize/);
  bad({ kind: 'step', milestones: [5, 3] }, 10, /milestones/);
  bad({ kind: 'step', stepSize: 2, gamma: 0 }, 10, /gamma/);
  bad({ kind: 'cosine', lr: 0.1, minLr: 0.2 }, 10, /minLr/);
  bad({ kind: 'linear' } as unknown as ScheduleConfig, 10, /linear/);
  assert.throws(() => createSchedule({ kind: 'constant' }, 5)(-1), /step/);
});
