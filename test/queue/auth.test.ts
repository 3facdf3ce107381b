/**
 * Redis with a password, with an ACL user, and over TLS: coordinator and workers connect
 * through the URL alone; a wrong password is one clear line that does not show it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { runCli, isOneLineError } from '../helpers/cli.js';
import { Coordinator } from '../../src/queue/coordinator.js';
import { startRedis, startWorkerProcess, stopWorker, testCertificates, type TestRedis } from './helpers.js';

/** A run's first job (what the dataset is on the workers) through a worker of its own. */
async function roundTrip(redis: TestRedis, name: string): Promise<void> {
  const w = startWorkerProcess(redis.url, name, ['--work', join(tempDir('queue-auth-'), 'w')]);
  try {
    const c = await Coordinator.open(redis.url, `auth-${name}`, `auth ${name}`, { checkSeconds: 1 });
    try {
      const d = await c.data('fashion-mnist-sample');
      assert.deepEqual(d.expect, { classes: 10, shape: [1, 28, 28], train: 5000, test: 1000 });
    } finally {
      await c.close();
    }
    await w.waitFor(/job dataset fashion-mnist-sample: done/);
  } finally {
    await stopWorker(w);
  }
}

test('an ACL user with a password: workers and coordinator connect; a wrong password is one line without the password', async () => {
  const redis = await startRedis({ user: 'lab', password: 'pa55-word' });
  try {
    await roundTrip(redis, 'acl');
    const wrong = redis.url.replace('pa55-word', 'guessed-it');
    const r = runCli(['queue', 'status', wrong]);
    assert.ok(isOneLineError(r), r.stderr);
    assert.match(r.stderr, /cannot reach the queue at redis:\/\/lab:\*\*\*@127\.0\.0\.1:\d+: .*WRONGPASS.* \(wrong or missing password\/user in the URL\)/);
    assert.ok(!r.stderr.includes('guessed-it'), 'the password is not printed');
    const none = runCli(['queue', 'status', redis.url.replace('lab:pa55-word@', '')]);
    assert.ok(isOneLineError(none), none.stderr);
  } finally {
    await redis.stop();
  }
});

test('TLS (rediss://) with a password (requirepass) and the CA given in the URL', async () => {
  const redis = await startRedis({ password: 'tls-pass', tls: testCertificates() });
  try {
    assert.match(redis.url, /^rediss:\/\/:tls-pass@127\.0\.0\.1:\d+\?ca=/);
    await roundTrip(redis, 'tls');
    const status = runCli(['queue', 'status', redis.url, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(JSON.parse(status.stdout).queue, /^rediss:\/\/:\*\*\*@127\.0\.0\.1:\d+$/);
  } finally {
    await redis.stop();
  }
});

test('bad queue URLs: one clear line each, before anything is done', () => {
  const dir = tempDir('queue-url-');
  for (const [url, expected] of [
    ['http://localhost:6379', /--queue expects a redis:\/\/ or rediss:\/\/ URL, got a http: URL/],
    ['redis://localhost:6379/x', /the path must be a database number such as \/0, got "\/x"/],
    ['redis://localhost:6379?tls=1', /unknown URL parameter "tls"/],
    ['not a url', /--queue expects a Redis URL such as redis:\/\/localhost:6379/],
  ] as const) {
    const r = runCli(['lineage-zoo', '--data', 'fashion-mnist-sample', '--queue', url, '-o', join(dir, 'zoo')]);
    assert.ok(isOneLineError(r), r.stderr);
    assert.match(r.stderr, expected);
  }
});
