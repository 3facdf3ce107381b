/**
 * Sessions over ONNX Runtime. Everything that executes a model goes through here, so
 * that thread counts, optimisation level and execution provider are set in one place.
 *
 * @example
 *   const s = await ModelSession.create(loadModel('m.onnx'), { threads: 2 });
 *   const out = await s.run({ input: { dims: [1, 1, 28, 28], data: pixels } });
 *   out.logits.data // Float32Array
 */
import * as ort from 'onnxruntime-node';
import { cpus } from 'node:os';
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import type { DType, Model, Tensor, TensorData } from '../onnx/types.js';
import { encodeModel } from '../onnx/proto.js';
import { createModel } from '../onnx/graph.js';
import { OptionError, UserError } from '../util/errors.js';
import { noteThreads } from '../util/provenance.js';
import { lowerConvs, nchwcBlockSize } from './nchwc.js';

/**
 * ONNX Runtime's own log (coloured lines on stderr, e.g. a CUDA library it cannot load)
 * stays out of normal output: its failures reach the user as one-line errors through the
 * exceptions below. MODELSMITH_ORT_LOG=verbose|info|warning|error shows it again.
 */
const ORT_LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;
const askedLog = process.env['MODELSMITH_ORT_LOG'];
ort.env.logLevel = (ORT_LOG_LEVELS as readonly string[]).includes(askedLog ?? '') ? (askedLog as (typeof ORT_LOG_LEVELS)[number]) : 'fatal';

/** The execution providers this ONNX Runtime build knows on this platform ('cpu', 'cuda', ...). */
export function executionProviders(): string[] {
  return ort.listSupportedBackends().map((b) => b.name);
}

export type OptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionOptions {
  /** intra-op threads (default: the number of CPU cores) */
  threads?: number;
  /** ONNX Runtime graph optimisation level (default 'all') */
  optimization?: OptimizationLevel;
  /** execution provider: 'cpu' (default), 'cuda', ... ; CPU stays as the fallback */
  provider?: string;
  /**
   * Run convolutions with run-time weights (training graphs) on ORT's blocked CPU
   * kernels (src/runtime/nchwc.ts). Default: on for the CPU provider.
   */
  nchwc?: boolean;
  /**
   * Write ONNX Runtime's per-node profile (Chrome trace JSON) to a file starting with
   * this path prefix; ModelSession.endProfiling() closes it and returns its path.
   */
  profile?: string;
  /**
   * ONNX Runtime's CPU memory arena (default on). The arena keeps the largest working
   * set the session ever needed (a batch of 256 full-size images: hundreds of MB) until
   * the session is released, so what bounds the memory of many sessions is how many are
   * alive. Off, each run takes its buffers from the system and gives them back, which
   * costs about twice the CPU time on large batches (fresh pages are mapped and zeroed
   * every run; measured on ConvNeXt-Tiny at 64x64); for sessions that run once or twice.
   */
  memArena?: boolean;
  /**
   * ONNX Runtime's memory pattern (default on): from the second run with an input shape
   * on, it allocates that shape's planned buffers as one block, which the arena keeps on
   * top of the chunks the first run grew: about 1.5-2x the memory a live session holds,
   * for no measurable speed on convolutional networks (stitch sessions, training steps
   * included). Off for sessions that stay alive next to many others (stitch grids).
   */
  memPattern?: boolean;
}

/** A value fed to or returned by a session: like Tensor, but any dtype ORT supports. */
export type Feed = Tensor | { dims: readonly number[]; data: Float32Array };

const ORT_TYPE: Partial<Record<DType, ort.Tensor.Type>> = {
  float32: 'float32',
  float64: 'float64',
  int64: 'int64',
  int32: 'int32',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
  float16: 'float16',
};

function toOrt(f: Feed): ort.Tensor {
  const dtype: DType = 'dtype' in f ? f.dtype : 'float32';
  const t = ORT_TYPE[dtype];
  if (!t) throw new UserError(`cannot feed a ${dtype} tensor to ONNX Runtime`);
  return new ort.Tensor(t, f.data as never, [...f.dims]);
}

function fromOrt(t: ort.Tensor): Tensor {
  const dtype = (Object.entries(ORT_TYPE).find(([, v]) => v === t.type)?.[0] ?? 'float32') as DType;
  return { dtype, dims: [...t.dims], data: t.data as TensorData };
}

export function defaultThreads(): number {
  return Math.max(1, cpus().length);
}

/**
 * An ONNX Runtime inference session over a model, with modelsmith's thread and provider settings.
 *
 * @example
 *   const session = await ModelSession.create(openModel('r.onnx'), { threads: 2 });
 *   const batch = await loadBatch(ds, [0, 1, 2, 3], { normalization: defaultNormalization('fashion-mnist', 1) });
 *   const outputs = await session.run({ [session.inputNames[0]!]: { dims: [4, 1, 28, 28], data: batch.x } });
 */
export class ModelSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly model: Model,
    private readonly profilePrefix?: string,
  ) {}

  static async create(model: Model, opts: SessionOptions = {}): Promise<ModelSession> {
    const providers = opts.provider && opts.provider !== 'cpu' ? [opts.provider, 'cpu'] : ['cpu'];
    noteThreads(opts.threads ?? defaultThreads());
    const block = providers.length === 1 && opts.nchwc !== false ? await nchwcBlockSize() : null;
    const runnable = block ? lowerConvs(model, block) : model;
    try {
      const session = await ort.InferenceSession.create(encodeModel(runnable), {
        intraOpNumThreads: opts.threads ?? defaultThreads(),
        interOpNumThreads: 1,
        graphOptimizationLevel: opts.optimization ?? 'all',
        executionProviders: providers,
        executionMode: 'sequential',
        enableCpuMemArena: opts.memArena ?? true,
        enableMemPattern: opts.memPattern ?? true,
        ...(opts.profile ? { enableProfiling: true, profileFilePrefix: opts.profile } : {}),
      });
      return new ModelSession(session, model, opts.profile);
    } catch (e) {
      if (providers.length > 1) await checkProvider(providers[0]!);
      throw new UserError(`ONNX Runtime could not load model ${model.graph.name}: ${firstLine(e)}`);
    }
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }
  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs the model; `outputs` restricts which outputs are fetched (default: all). */
  async run(feeds: Record<string, Feed>, outputs?: readonly string[]): Promise<Record<string, Tensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) ortFeeds[k] = toOrt(v);
    let result: ort.InferenceSession.OnnxValueMapType;
    try {
      result = outputs ? await this.session.run(ortFeeds, [...outputs]) : await this.session.run(ortFeeds);
    } catch (e) {
      throw new UserError(`running model ${this.model.graph.name} failed: ${firstLine(e)}`);
    }
    const out: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(result)) out[k] = fromOrt(v as ort.Tensor);
    return out;
  }

  /**
   * Stops profiling (SessionOptions.profile) and returns the profile file's path: ORT
   * names it `<prefix>_<timestamp>.json` without telling, so it is the newest such file.
   */
  endProfiling(): string {
    if (!this.profilePrefix) throw new Error('endProfiling: the session was not created with the profile option');
    this.session.endProfiling();
    const dir = dirname(resolve(this.profilePrefix));
    const base = basename(this.profilePrefix);
    const files = readdirSync(dir)
      .filter((f) => f.startsWith(`${base}_`) && f.endsWith('.json'))
      .map((f) => join(dir, f))
      .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
    if (!files[0]) throw new Error(`ONNX Runtime wrote no profile next to ${this.profilePrefix}`);
    return files[0];
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

const providerChecks = new Map<string, Promise<void>>();

/**
 * Throws a one-line UserError when `provider` cannot run here (unknown name, or its
 * libraries missing, e.g. CUDA on a machine without it), by opening a one-node model
 * with it. Done once per provider, in a child process: native libraries print their own
 * complaints straight to the terminal (WebGPU's Dawn does, whatever ORT's log level) or
 * may even crash, and neither should reach the user instead of one line.
 */
export function checkProvider(provider: string): Promise<void> {
  let check = providerChecks.get(provider);
  if (!check) {
    check = probeProvider(provider);
    providerChecks.set(provider, check);
  }
  return check;
}

const PROBE_SCRIPT = `
const [ortPath, provider, model] = process.argv.slice(1);
const ort = (await import(ortPath)).default;
ort.env.logLevel = 'fatal';
try {
  const s = await ort.InferenceSession.create(Buffer.from(model, 'base64'), { executionProviders: [provider] });
  await s.release();
} catch (e) {
  process.stdout.write(String(e?.message ?? e).split('\\n')[0]);
  process.exit(3);
}`;

async function probeProvider(provider: string): Promise<void> {
  const known = executionProviders();
  if (!known.includes(provider)) throw new UserError(`execution provider "${provider}" is not known to ONNX Runtime here; expected one of ${known.join(', ')}`);
  if (provider === 'cpu') return;
  const probe = createModel({
    name: 'provider_probe',
    nodes: [{ name: 'id', opType: 'Identity', inputs: ['x'], outputs: ['y'], attributes: {} }],
    initializers: new Map(),
    inputs: [{ name: 'x', dtype: 'float32', shape: [1] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: [1] }],
    valueInfo: new Map(),
  });
  const ortPath = pathToFileURL(createRequire(import.meta.url).resolve('onnxruntime-node')).href;
  const args = ['--input-type=module', '-e', PROBE_SCRIPT, ortPath, provider, Buffer.from(encodeModel(probe)).toString('base64')];
  const why = await new Promise<string | undefined>((done) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.on('error', (e) => done(e.message));
    child.on('close', (code, signal) => {
      done(code === 0 ? undefined : out.trim() || `the probe ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`);
    });
  });
  if (why !== undefined) {
    // native messages open with source locations and assertions: their last sentence says what is wrong
    const last =
      why
        .split(/\.\s+/)
        .map((x) => x.trim())
        .filter(Boolean)
        .pop() ?? why;
    throw new OptionError(
      (o) =>
        `execution provider "${provider}" cannot run on this machine (${last.slice(0, 300)}); ` +
        `use ${o('provider', 'cpu')}, or install ONNX Runtime's ${provider} libraries`,
    );
  }
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0]!;
}
