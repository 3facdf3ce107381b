import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionCache } from '../../src/stitch/sessions.js';

/** A stand-in session that records its release. */
class Fake {
  released = false;
  constructor(readonly key: string) {}
  async release(): Promise<void> {
    assert.equal(this.released, false, `session ${this.key} released twice`);
    this.released = true;
  }
}

function maker(made: Fake[]): (key: string) => () => Promise<Fake> {
  return (key) => async () => {
    const f = new Fake(key);
    made.push(f);
    return f;
  };
}

test('a session cache keeps at most its capacity: each session past it is released, the least recently used first', async () => {
  const made: Fake[] = [];
  const make = maker(made);
  const cache = new SessionCache<Fake>(2);
  for (const key of ['a', 'b', 'c', 'd', 'e']) await cache.with(key, make(key), async () => undefined);
  assert.equal(cache.live, 2);
  assert.equal(cache.misses, 5);
  assert.equal(cache.released, 3);
  assert.deepEqual(
    made.filter((f) => !f.released).map((f) => f.key),
    ['d', 'e'],
  );
  // a hit moves the key to the front: 'd' stays when 'f' comes
  await cache.with('d', make('d'), async () => undefined);
  await cache.with('f', make('f'), async () => undefined);
  assert.equal(cache.hits, 1);
  assert.deepEqual(
    made.filter((f) => !f.released).map((f) => f.key),
    ['d', 'f'],
  );
  await cache.release();
  assert.equal(cache.live, 0);
  assert.ok(made.every((f) => f.released));
});

test('a session in use is not released when other keys push it out: it goes when its use ends', async () => {
  const made: Fake[] = [];
  const make = maker(made);
  const cache = new SessionCache<Fake>(1);
  let inside: Fake | undefined;
  await cache.with('long', make('long'), async (s) => {
    inside = s;
    // two other sessions come and go while 'long' runs
    await cache.with('x', make('x'), async () => undefined);
    await cache.with('y', make('y'), async () => undefined);
    assert.equal(s.released, false, 'released under its user');
    assert.equal(cache.live, 2, "'long' (leaving) and 'y' (kept)");
  });
  assert.equal(inside!.released, true, 'released once its use ended');
  assert.equal(cache.live, 1);
  await cache.release();
  assert.ok(made.every((f) => f.released));
});

test('a session cache of capacity 0 reuses nothing and releases every session after its use; no key: a session of its own', async () => {
  const made: Fake[] = [];
  const make = maker(made);
  const cache = new SessionCache<Fake>(0);
  await cache.with('a', make('a'), async (s) => assert.equal(s.released, false));
  await cache.with('a', make('a'), async () => undefined);
  assert.equal(cache.hits, 0);
  assert.equal(cache.live, 0);
  const one = new SessionCache<Fake>(4);
  await one.with(undefined, make('own'), async () => undefined);
  assert.equal(one.live, 0);
  assert.ok(made.every((f) => f.released));
  assert.throws(() => new SessionCache<Fake>(-1), /capacity/);
});

test('a session that fails to open is not kept', async () => {
  const cache = new SessionCache<Fake>(2);
  await assert.rejects(
    cache.with(
      'bad',
      async () => {
        throw new Error('cannot open');
      },
      async () => undefined,
    ),
    /cannot open/,
  );
  assert.equal(cache.live, 0);
  const made: Fake[] = [];
  await cache.with('bad', maker(made)('bad'), async () => undefined);
  assert.equal(made.length, 1, 'opened afresh');
});
