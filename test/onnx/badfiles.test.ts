import { test } from 'node:test';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { encodeModel, loadModel } from '../../src/onnx/proto.js';
import { validateModel } from '../../src/onnx/validate.js';
import { buildModel, node, tinyConvNet, vi } from '../helpers/graphs.js';
import { tempDir } from '../helpers/paths.js';
import { assertUserError } from '../helpers/assertions.js';

const { onnx } = onnxProto;

test('a truncated .onnx file is refused with a message naming the file', () => {
  const dir = tempDir();
  const bytes = encodeModel(tinyConvNet());
  const path = join(dir, 'truncated.onnx');
  writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
  assertUserError(() => loadModel(path), path, /not a valid ONNX model|not an ONNX model/);
});

test('a text file and PNG bytes are not taken for ONNX models', () => {
  const dir = tempDir();
  const text = join(dir, 'notes.onnx');
  writeFileSync(text, 'this is a plain text file, not a model\n'.repeat(20));
  assertUserError(() => loadModel(text), text);
  const png = join(dir, 'image.onnx');
  const header = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52];
  writeFileSync(png, Uint8Array.from([...header, ...Array.from({ length: 200 }, (_, i) => (i * 37) & 0xff)]));
  assertUserError(() => loadModel(png), png);
});

test('a missing file is reported by path', () => {
  assertUserError(() => loadModel('/nonexistent/dir/model.onnx'), '/nonexistent/dir/model.onnx');
});

test('validateModel names the node and the operator it does not support', () => {
  const m = buildModel({ inputs: [vi('x', [1, 4])], outputs: ['y'], nodes: [node('Relu', ['x'], ['r']), node('Foo', ['r'], ['y'], {}, 'conv_7')] });
  assertUserError(() => validateModel(m, 'model.onnx'), 'model.onnx: node "conv_7" uses operator "Foo", which modelsmith does not support');
});

test('external data outside the model folder is refused', () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'models'));
  writeFileSync(join(dir, 'secret.bin'), new Uint8Array(16));
  const proto = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [{ opType: 'Identity', input: ['w'], output: ['y'], name: 'id' }],
      initializer: [
        {
          name: 'w',
          dataType: 1,
          dims: [4],
          dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
          externalData: [{ key: 'location', value: '../secret.bin' }],
        },
      ],
      output: [{ name: 'y', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 4 }] } } } }],
    },
  });
  const path = join(dir, 'models', 'm.onnx');
  writeFileSync(path, onnx.ModelProto.encode(proto).finish());
  assertUserError(() => loadModel(path), '../secret.bin', /refused|leaves/);
});
