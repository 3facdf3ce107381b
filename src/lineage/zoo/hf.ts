/**
 * A lineage zoo written as Hugging Face model folders, as models sit on the Hub: one
 * folder per model with config.json, model.safetensors (or shards with a
 * model.safetensors.index.json) and a README.md whose YAML front matter is the model
 * card metadata the Hub builds model trees from (`base_model`, `base_model_relation`).
 * The weights carry no zoo record (only {"format": "pt"}, as transformers writes), so a
 * recovery reads the truth from the cards alone.
 *
 * @example
 *   writeHfZoo('runs/zoo/vit-ft', 'runs/zoo/vit-ft-hf');
 *   // modelsmith lineage runs/zoo/vit-ft-hf --clusters 3 -o out/   (scored from the cards)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../../onnx/types.js';
import { numel } from '../../onnx/tensor.js';
import { openSafetensors, writeSafetensors } from '../../io/safetensors.js';
import { itemSize, safetensorsDType } from '../../io/safetensors-format.js';
import { writeFileAtomic, writeJsonAtomic } from '../../util/atomic.js';
import { UserError } from '../../util/errors.js';
import { info } from '../../util/progress.js';
import { pct } from '../../util/format.js';
import type { ZooSettings } from './options.js';
import type { ZooModelRecord } from './make.js';

export interface HfZooOptions {
  /** split a model's weights into shards of at most this many bytes (default: one file) */
  maxShardBytes?: number;
}

export interface HfZooResult {
  dir: string;
  models: number;
  sharded: number;
}

export function writeHfZoo(from: string, to: string, opts: HfZooOptions = {}): HfZooResult {
  const max = opts.maxShardBytes;
  if (max !== undefined && !(Number.isInteger(max) && max > 0)) throw new UserError(`HF shard size must be a positive number of bytes, got ${max}`);
  const zooFile = join(from, 'zoo.json');
  if (!existsSync(zooFile)) throw new UserError(`${from} has no zoo.json: not a lineage zoo`);
  let zoo: { settings: ZooSettings; data?: { train?: string }; models: ZooModelRecord[] };
  try {
    zoo = JSON.parse(readFileSync(zooFile, 'utf8')) as typeof zoo;
  } catch {
    throw new UserError(`${zooFile} is not valid JSON`);
  }
  if (!zoo.settings || !Array.isArray(zoo.models)) throw new UserError(`${zooFile} lacks settings or models: not a lineage zoo`);
  let sharded = 0;
  for (const rec of zoo.models) {
    const src = openSafetensors(join(from, `${rec.name}.safetensors`));
    let tensors: [string, Tensor][];
    try {
      tensors = src.tensors.map((t) => [t.name, src.readTensor(t.name)]);
    } finally {
      src.close();
    }
    const dir = join(to, rec.name);
    if (writeWeights(dir, tensors, max)) sharded++;
    writeJsonAtomic(join(dir, 'config.json'), hfConfig(zoo.settings, rec));
    writeFileAtomic(join(dir, 'README.md'), modelCard(zoo.settings, rec));
  }
  info(`Hugging Face folders of ${from}: ${zoo.models.length} models in ${to}${sharded ? ` (${sharded} sharded)` : ''}`);
  return { dir: to, models: zoo.models.length, sharded };
}

/** model.safetensors, or shards model-0000k-of-0000n.safetensors and their index when over `max` bytes; true when sharded. */
function writeWeights(dir: string, tensors: [string, Tensor][], max: number | undefined): boolean {
  const meta = { format: 'pt' };
  const bytes = (t: Tensor): number => numel(t.dims) * itemSize(safetensorsDType(t.dtype));
  const total = tensors.reduce((s, [, t]) => s + bytes(t), 0);
  if (max === undefined || total <= max) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, meta);
    return false;
  }
  const shards: [string, Tensor][][] = [[]];
  let size = 0;
  for (const entry of tensors) {
    const b = bytes(entry[1]);
    if (size > 0 && size + b > max) {
      shards.push([]);
      size = 0;
    }
    shards.at(-1)!.push(entry);
    size += b;
  }
  const n = shards.length;
  const file = (k: number): string => `model-${String(k + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
  const weightMap: Record<string, string> = {};
  shards.forEach((s, k) => {
    writeSafetensors(join(dir, file(k)), s, meta);
    for (const [name] of s) weightMap[name] = file(k);
  });
  writeJsonAtomic(join(dir, 'model.safetensors.index.json'), { metadata: { total_size: total }, weight_map: weightMap });
  return true;
}

/** A transformers-style config: the ViT's fields under their ViTConfig names, the zoo's own settings beside them. */
function hfConfig(s: ZooSettings, rec: ZooModelRecord): Record<string, unknown> {
  const vit = s.vit
    ? {
        model_type: 'vit',
        architectures: ['VisionTransformer'],
        hidden_size: s.vit.hidden,
        num_hidden_layers: s.vit.layers,
        num_attention_heads: s.vit.heads,
        intermediate_size: s.vit.mlp,
        patch_size: s.vit.patch,
        hidden_act: 'gelu',
        layer_norm_eps: 1e-6,
      }
    : { model_type: s.arch, architectures: [s.arch] };
  return {
    ...vit,
    num_labels: rec.task.outputOf.length,
    torch_dtype: 'float32',
    modelsmith: { arch: s.arch, ...(s.hidden ? { hidden: s.hidden } : {}), width: s.width, data: s.data },
  };
}

/** README.md with the card metadata; the prose says how the model was made. */
function modelCard(s: ZooSettings, rec: ZooModelRecord): string {
  const front = ['---', 'library_name: modelsmith', `tags: [lineage-zoo, ${s.arch}]`];
  if (rec.parent !== null) front.push(`base_model: ${rec.parent}`, `base_model_relation: ${rec.rank !== null ? 'adapter' : 'finetune'}`);
  front.push('---');
  const how =
    rec.parent === null
      ? `trained from scratch (${rec.steps} steps)`
      : `fine-tuned from ${rec.parent} (${rec.rank !== null ? `LoRA rank ${rec.rank}, merged` : 'all weights'}; ` +
        `${rec.steps} steps, learning rate ${rec.lr}; task: ${rec.task.kind})`;
  return [
    ...front,
    '',
    `# ${rec.name}`,
    '',
    `A ${s.arch} of a modelsmith lineage zoo (${s.data}): ${how}. Test accuracy on its task ${pct(rec.testAccuracy)}.`,
    '',
  ].join('\n');
}
