/**
 * The queue tests' harness: a real redis-server on a free loopback port in a temporary
 * folder (never the machine's own Redis), and modelsmith workers as child processes.
 * .ci/run installs Debian's redis-server when it is missing, so nothing is skipped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { tempDir } from '../helpers/paths.js';
import { createZooModel } from '../../src/nn/zoo.js';
import { saveModel } from '../../src/onnx/proto.js';
import { setInputSpec, setLabels } from '../../src/onnx/metadata.js';

export const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface RedisOptions {
  password?: string;
  /** an ACL user with this password (besides the default user, which is then disabled) */
  user?: string;
  /** keep the data across a restart (append-only file) */
  persist?: boolean;
  /** serve TLS only, with these PEM files (the URL gets rediss:// and ?ca=) */
  tls?: { cert: string; key: string; ca: string };
}

export interface TestRedis {
  url: string;
  port: number;
  dir: string;
  client(): Redis;
  /** stops the server (SIGTERM: it saves its append-only file first) */
  stop(): Promise<void>;
  /** starts it again on the same port and folder */
  start(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** redis-server exited while starting: most likely another process took the port after freePort() found it free. */
class ServerExited extends Error {}

export async function startRedis(o: RedisOptions = {}): Promise<TestRedis> {
  const which = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (which.status !== 0) throw new Error('redis-server is not installed: .ci/run installs it (apt-get install redis-server)');
  for (let attempt = 1; ; attempt++) {
    try {
      return await startRedisOn(await freePort(), o);
    } catch (e) {
      if (!(e instanceof ServerExited) || attempt >= 3) throw e;
    }
  }
}

async function startRedisOn(port: number, o: RedisOptions): Promise<TestRedis> {
  const dir = tempDir('queue-redis-');
  let proc: ChildProcess | undefined;
  const tls = o.tls
    ? [
        '--port',
        '0',
        '--tls-port',
        String(port),
        '--tls-cert-file',
        o.tls.cert,
        '--tls-key-file',
        o.tls.key,
        '--tls-ca-cert-file',
        o.tls.ca,
        '--tls-auth-clients',
        'no',
      ]
    : ['--port', String(port)];
  const args = [
    ...tls,
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    o.persist ? 'yes' : 'no',
    '--appendfsync',
    'always',
    '--daemonize',
    'no',
    '--loglevel',
    'warning',
    ...(o.user ? ['--user', 'default', 'off', '--user', o.user, 'on', `>${o.password}`, '~*', '&*', '+@all'] : o.password ? ['--requirepass', o.password] : []),
  ];
  const auth = o.user ? `${o.user}:${o.password}@` : o.password ? `:${o.password}@` : '';
  const url = o.tls ? `rediss://${auth}127.0.0.1:${port}?ca=${encodeURIComponent(o.tls.ca)}` : `redis://${auth}127.0.0.1:${port}`;
  const client = (): Redis => {
    const c = new Redis({
      host: '127.0.0.1',
      port,
      maxRetriesPerRequest: null,
      ...(o.user ? { username: o.user } : {}),
      ...(o.password ? { password: o.password } : {}),
      ...(o.tls ? { tls: { ca: readFileSync(o.tls.ca, 'utf8') } } : {}),
    });
    c.on('error', () => {});
    return c;
  };
  const start = async (): Promise<void> => {
    const p = spawn('redis-server', args, { stdio: 'ignore' });
    proc = p;
    children.add(p);
    for (let i = 0; i < 100; i++) {
      if (p.exitCode !== null) throw new ServerExited(`redis-server exited with code ${p.exitCode} on port ${port}`);
      const c = client();
      c.on('error', () => {});
      // the server on the port must be this one: a server another test started there would answer too
      const ours = await c.info('server').then(
        (info) => new RegExp(`^process_id:${p.pid}\\s*$`, 'm').test(info),
        () => false,
      );
      c.disconnect();
      if (ours) return;
      await sleep(100);
    }
    throw new Error(`redis-server did not start on port ${port}`);
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.on('exit', () => resolve());
      p.kill('SIGTERM');
    });
    children.delete(p);
  };
  await start();
  return { url, port, dir, client, stop, start };
}

/**
 * Two small ResNets (3 outputs: Fashion-MNIST classes 0-2) as files in `dir`. Untrained:
 * the queue must reproduce a local run's numbers whatever the weights.
 */
export function queueModels(dir: string): string[] {
  return [31, 32].map((seed) => {
    const m = createZooModel('resnet', { blocks: [1, 1, 1, 1], width: 0.125, classes: 3, seed });
    setLabels(
      m,
      [0, 1, 2].map((c) => ({ dataset: 'fashion-mnist', class: c })),
    );
    setInputSpec(m, { shape: [1, 28, 28], mean: [0.286], std: [0.353] });
    const f = join(dir, `r${seed}.onnx`);
    saveModel(m, f);
    return f;
  });
}

/** A CA and a server certificate for 127.0.0.1 made with openssl (for a TLS Redis). */
export function testCertificates(): { cert: string; key: string; ca: string } {
  const d = tempDir('queue-tls-');
  const run = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: d, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr}`);
  };
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=modelsmith test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  const ext = join(d, 'ext.cnf');
  spawnSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1\n' > ${ext}`]);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', ext]);
  return { cert: join(d, 'server.pem'), key: join(d, 'server.key'), ca: join(d, 'ca.pem') };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface TestWorker {
  proc: ChildProcess;
  name: string;
  /** everything it printed on stderr so far */
  log(): string;
  /** resolves when its stderr matches */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

/** `modelsmith worker` in a child process, with short lock and stall times so that a killed worker's job moves on in seconds. */
export function startWorkerProcess(url: string, name: string, extra: string[] = []): TestWorker {
  const work = tempDir(`queue-worker-${name}-`);
  const proc = spawn(
    process.execPath,
    [MAIN, 'worker', '--queue', url, '--name', name, '--threads', '1', '--work', join(work, 'w'), '--lock-seconds', '4', '--stall-seconds', '1', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.add(proc);
  let text = '';
  const listeners = new Set<() => void>();
  proc.stderr!.on('data', (d: Buffer) => {
    text += d.toString();
    for (const l of listeners) l();
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      children.delete(proc);
      resolve(code);
    }),
  );
  return {
    proc,
    name,
    log: () => text,
    exited,
    waitFor: (re, timeoutMs = 120_000) =>
      new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (re.test(text)) {
            listeners.delete(check);
            clearTimeout(timer);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`worker ${name} did not print ${re} within ${timeoutMs} ms:\n${text}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      }),
  };
}

export async function stopWorker(w: TestWorker): Promise<void> {
  if (w.proc.exitCode !== null) return;
  w.proc.kill('SIGTERM');
  await w.exited;
}

/** Starts the CLI in a child process (so that workers in this test run meanwhile). */
export function startCli(args: string[], timeoutMs = 300_000): { proc: ChildProcess; done: Promise<{ code: number | null; stdout: string; stderr: string }> } {
  const proc = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let stdout = '',
    stderr = '';
  proc.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    proc.on('close', (code) => {
      clearTimeout(timer);
      children.delete(proc);
      resolve({ code, stdout, stderr });
    });
  });
  return { proc, done };
}

export const runCliAsync = (args: string[], timeoutMs?: number): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  startCli(args, timeoutMs).done;

/** Polls until cond() holds (it may ask Redis). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
