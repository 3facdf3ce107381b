/**
 * Every kind of job a worker runs, by BullMQ job name: the one table a worker consults.
 * `data` resolves a dataset spec and says what it found (the coordinator asks once per run).
 */
import { identityOf, type DataIdentity, type JobKind } from './jobs.js';
import { fields, str } from './schema.js';
import { STITCH_BASE, STITCH_CELL } from './stitch.js';
import { CKA } from './cka.js';
import { LEGO_PLAN, LEGO_ROW } from './lego.js';
import { ZOO_MODEL } from './zoo.js';

const DATA: JobKind<{ spec: string }, DataIdentity & { sources: { train: string; test: string } }> = {
  parse(raw) {
    const o = fields(raw, 'data payload', ['spec', 'nonce']);
    str(o['nonce'], 'data payload.nonce', 200);
    return { spec: str(o['spec'], 'data payload.spec', 1024) };
  },
  async run(p, env) {
    const train = await env.openData(p.spec, 'train');
    const test = await env.openData(p.spec, 'test');
    return { ...identityOf(train, test), sources: { train: train.source, test: test.source } };
  },
};

export const JOB_KINDS: Readonly<Record<string, JobKind<never, unknown>>> = {
  data: DATA,
  'stitch-cell': STITCH_CELL,
  'stitch-base': STITCH_BASE,
  cka: CKA,
  'lego-plan': LEGO_PLAN,
  'lego-row': LEGO_ROW,
  'zoo-model': ZOO_MODEL,
} as unknown as Record<string, JobKind<never, unknown>>;
