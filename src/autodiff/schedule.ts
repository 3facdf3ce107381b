/**
 * Learning-rate schedules, evaluated per optimiser step (0-based). An optional linear
 * warm-up comes first; the main schedule then counts its steps from the end of the
 * warm-up, as PyTorch's SequentialLR does. Without `lr` the base rate is 1 and the
 * schedule is a multiplier of whatever rate the caller uses.
 *
 * - constant: lr
 * - step: lr * gamma^k, k = floor(t / stepSize), or the number of milestones <= t
 * - cosine: minLr + (lr - minLr) * (1 + cos(pi * t / T)) / 2 over the T = totalSteps -
 *   warmupSteps steps after warm-up (PyTorch's CosineAnnealingLR with T_max = T, stepped
 *   per step); steps past the end stay at minLr
 * - warm-up: step s < W gets lr_main(0) * (s + 1) / W, reaching the full rate on its
 *   last step, so no step is wasted at rate 0
 */
import { UserError } from '../util/errors.js';

interface Common {
  /** base learning rate (default 1: the schedule is a multiplier) */
  lr?: number;
  /** linear warm-up steps before the main schedule (default 0) */
  warmupSteps?: number;
}

export type ScheduleConfig = Common &
  (
    | { kind: 'constant' }
    /** multiply by gamma (default 0.1) every stepSize steps, or at each milestone step */
    | { kind: 'step'; gamma?: number; stepSize?: number; milestones?: number[] }
    /** minLr in the units of lr (default 0) */
    | { kind: 'cosine'; minLr?: number }
  );

/** The schedule kinds, the keys of a per-kind record so that the list cannot miss one. */
const KIND_SET: Readonly<Record<ScheduleConfig['kind'], true>> = { constant: true, step: true, cosine: true };
export const SCHEDULE_KINDS = Object.keys(KIND_SET) as readonly ScheduleConfig['kind'][];

export type Schedule = (step: number) => number;

export function createSchedule(config: ScheduleConfig, totalSteps: number): Schedule {
  const lr = config.lr ?? 1;
  if (!(Number.isFinite(lr) && lr >= 0)) throw new UserError(`schedule lr must be a finite number >= 0, got ${lr}`);
  if (!Number.isSafeInteger(totalSteps) || totalSteps < 1) throw new UserError(`schedule needs a positive integer number of steps, got ${totalSteps}`);
  const warmup = config.warmupSteps ?? 0;
  if (!Number.isSafeInteger(warmup) || warmup < 0 || warmup > totalSteps) {
    throw new UserError(`warmupSteps must be an integer in [0, ${totalSteps}] (the total steps), got ${warmup}`);
  }
  const main = mainSchedule(config, lr, totalSteps - warmup);
  return (step) => {
    if (!Number.isSafeInteger(step) || step < 0) throw new Error(`schedule: step must be a non-negative integer, got ${step}`);
    return step < warmup ? (main(0) * (step + 1)) / warmup : main(step - warmup);
  };
}

function mainSchedule(config: ScheduleConfig, lr: number, steps: number): Schedule {
  switch (config.kind) {
    case 'constant':
      return () => lr;
    case 'step':
      return stepDecay(config, lr);
    case 'cosine':
      return cosine(config.minLr ?? 0, lr, steps);
    default:
      throw new UserError(`schedule kind ${JSON.stringify((config as { kind: unknown }).kind)} is not known (expected constant, step or cosine)`);
  }
}

function stepDecay(config: Extract<ScheduleConfig, { kind: 'step' }>, lr: number): Schedule {
  const gamma = config.gamma ?? 0.1;
  if (!(Number.isFinite(gamma) && gamma > 0)) throw new UserError(`step schedule gamma must be a finite number > 0, got ${gamma}`);
  const { stepSize, milestones } = config;
  if ((stepSize === undefined) === (milestones === undefined)) throw new UserError('step schedule needs exactly one of stepSize and milestones');
  if (stepSize !== undefined) {
    if (!Number.isSafeInteger(stepSize) || stepSize < 1) throw new UserError(`step schedule stepSize must be a positive integer, got ${stepSize}`);
    return (t) => lr * gamma ** Math.floor(t / stepSize);
  }
  const ms = milestones!;
  if (!ms.every((m, i) => Number.isSafeInteger(m) && m >= 0 && (i === 0 || m > ms[i - 1]!))) {
    throw new UserError(`step schedule milestones must be increasing non-negative integers, got [${ms.join(', ')}]`);
  }
  return (t) => lr * gamma ** ms.filter((m) => m <= t).length;
}

function cosine(minLr: number, lr: number, steps: number): Schedule {
  if (!(Number.isFinite(minLr) && minLr >= 0 && minLr <= lr)) throw new UserError(`cosine schedule minLr must be in [0, lr = ${lr}], got ${minLr}`);
  if (steps === 0) return () => lr;
  return (t) => (t >= steps ? minLr : minLr + ((lr - minLr) * (1 + Math.cos((Math.PI * t) / steps))) / 2);
}
