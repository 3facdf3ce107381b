/**
 * The one thing coordinator and workers share: a Redis URL.
 *   redis://host[:port][/db]                      plain TCP (trusted networks only)
 *   redis://[user]:password@host[:port][/db]      password (requirepass) or ACL user
 *   rediss://user:password@host[:port][/db]       the same over TLS
 *   ...?ca=/path/ca.pem                           TLS: trust this CA (self-signed servers)
 * The password never appears in messages (`display` masks it).
 *
 * @example
 *   const q = parseQueueUrl('rediss://worker:s3cret@redis.lab:6380/2');
 *   q.display; // 'rediss://worker:***@redis.lab:6380/2'
 *   const redis = connectRedis(q);
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { OptionError, UserError } from '../util/errors.js';

export interface QueueUrl {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  tls: boolean;
  /** PEM of the CA to trust (rediss with ?ca=) */
  ca?: string;
  /** the URL with the password masked */
  display: string;
}

export function parseQueueUrl(text: string): QueueUrl {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new OptionError((o) => `${o('url')} expects a Redis URL such as redis://localhost:6379 or rediss://user:password@host:6380/0, got "${mask(text)}"`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new OptionError((o) => `${o('url')} expects a redis:// or rediss:// URL, got a ${u.protocol.replace(/:$/, '')}: URL`);
  }
  if (!u.hostname) throw new OptionError((o) => `${o('url', mask(text))}: the URL names no host`);
  const port = u.port === '' ? 6379 : Number(u.port);
  const path = u.pathname.replace(/^\/+/, '');
  if (path !== '' && !/^\d+$/.test(path))
    throw new OptionError((o) => `${o('url', mask(text))}: the path must be a database number such as /0, got "/${path}"`);
  const db = path === '' ? 0 : Number(path);
  if (db > 65535) throw new OptionError((o) => `${o('url', mask(text))}: database ${db} is out of range`);
  const params = [...u.searchParams.keys()];
  const unknown = params.find((k) => k !== 'ca');
  if (unknown) throw new OptionError((o) => `${o('url', mask(text))}: unknown URL parameter "${unknown}" (only ?ca=<CA file> is understood)`);
  const tls = u.protocol === 'rediss:';
  const caFile = u.searchParams.get('ca');
  if (caFile !== null && !tls) throw new OptionError((o) => `${o('url', mask(text))}: ?ca= needs a rediss:// (TLS) URL`);
  let ca: string | undefined;
  if (caFile !== null) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (e) {
      throw new OptionError((o) => `${o('url')}: cannot read the CA file ${caFile}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  const username = u.username ? decodeURIComponent(u.username) : undefined;
  const password = u.password ? decodeURIComponent(u.password) : undefined;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return {
    host,
    port,
    db,
    tls,
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(ca ? { ca } : {}),
    display: `${u.protocol}//${username ? username : ''}${password ? ':***' : ''}${username || password ? '@' : ''}${u.host}${db ? `/${db}` : ''}`,
  };
}

/** The URL with any password replaced by *** (for error messages about unparsable URLs). */
function mask(text: string): string {
  return text.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

/**
 * A new connection. BullMQ needs `maxRetriesPerRequest: null` (commands wait for a
 * reconnect instead of failing), which also lets a run survive a Redis restart.
 */
export function connectRedis(q: QueueUrl, extra: RedisOptions = {}): Redis {
  const opts: RedisOptions = {
    host: q.host,
    port: q.port,
    db: q.db,
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    // reconnect forever, at most every 2 s (a restarted Redis is found within that)
    retryStrategy: (times) => Math.min(100 * times, 2000),
    ...(q.username ? { username: q.username } : {}),
    ...(q.password ? { password: q.password } : {}),
    // SNI takes host names only (RFC 6066); certificates for IP addresses are matched without it
    ...(q.tls ? { tls: { ...(isIP(q.host) ? {} : { servername: q.host }), ...(q.ca ? { ca: q.ca } : {}) } } : {}),
    ...extra,
  };
  const redis = new Redis(opts);
  // errors surface through the commands that fail; without a listener ioredis prints each reconnect attempt
  redis.on('error', () => {});
  return redis;
}

/**
 * Checks that Redis answers (and accepts the credentials) within `timeoutMs`, so that a
 * wrong URL or password is one clear line instead of an endless reconnect loop.
 */
export async function checkRedis(q: QueueUrl, timeoutMs = 10_000): Promise<void> {
  const redis = connectRedis(q, { retryStrategy: () => null, lazyConnect: true, connectTimeout: timeoutMs });
  // the first error says why (a refused password closes the connection, and connect() then only says that)
  let first: Error | undefined;
  redis.on('error', (e: Error) => {
    first ??= e;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    const msg = (first ?? (e as Error)).message.split('\n')[0] ?? String(e);
    const hint = /NOAUTH|WRONGPASS|invalid password|invalid username/i.test(msg)
      ? ' (wrong or missing password/user in the URL)'
      : /ECONNREFUSED|ENOTFOUND|ETIMEDOUT|EHOSTUNREACH/.test(msg)
        ? ' (is redis-server running there?)'
        : '';
    throw new UserError(`cannot reach the queue at ${q.display}: ${msg}${hint}`);
  } finally {
    redis.disconnect();
  }
}
