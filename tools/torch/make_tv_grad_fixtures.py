#!/usr/bin/python3
"""Make PyTorch gradient references for the torchvision-family fixtures:
fixtures/torchvision/<name>.grad.json.

    /usr/bin/python3 tools/torch/make_tv_grad_fixtures.py [--only tv_resnet18,tv_vit]

Run after make_tv_fixtures.py. For each fixture it rebuilds the very model that script
exported (its FIXTURES constructor, torch.manual_seed(index), randomise(model, 100 +
index)), checks that it reproduces the logits in <name>.io.json, folds BatchNorm into the
convolutions as the eval-mode export did, matches every parameter to the ONNX tensor
holding it (grad_reference.match_parameters: by name, else by value, possibly
transposed; every trainable ONNX tensor exactly once) and records, in float64 on the
.io.json input batch (4 images) with fixed labels (torch.randint with seed 2025):

- `loss`: CrossEntropyLoss (mean) of the logits, eval mode; `logits` (base64 float64);
- `grads`: {ONNX tensor: {shape, data}}, the loss gradient, computed in float64 and stored
  as base64 little-endian float32 (the checks are at 1e-4 relative; float32 halves the
  files);
- `fd_max_err`: the worst disagreement of float64 central differences (one seeded
  coordinate per tensor) with the recorded gradients, as a check of the reference;
- `float32_error`: the worst per-tensor relative error of PyTorch's own float32 step
  against float64 (the script fails above 1e-5: the batch must not sit on a kink).

test/torch/tv-gradients.test.ts compares modelsmith's training-graph gradients with these.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

import grad_reference as ref  # noqa: E402
import make_tv_fixtures as tv  # noqa: E402

NAMES = ['tv_resnet18', 'tv_mobilenet_v3_small', 'tv_efficientnet_b0', 'tv_convnext', 'tv_vit', 'tv_resnet50',
         'tv_googlenet', 'tv_densenet', 'tv_regnet_x', 'tv_regnet_y', 'tv_shufflenet_v2', 'tv_squeezenet', 'tv_mobilenet_v2',
         'tv_vgg_bn', 'tv_swin']
MAX_BYTES = 512 * 1024
FD_STEP = 1e-6
FD_TOLERANCE = 1e-5


def fail(msg):
    sys.exit(f'make_tv_grad_fixtures: {msg}')


def rebuild(name):
    index = list(tv.FIXTURES).index(name)
    torch.manual_seed(index)
    model = tv.FIXTURES[name]()
    tv.randomise(model, 100 + index)
    return model


def fd_check(model, onnx_path, x, y, grads):
    """Worst |central difference - gradient| / max(1e-3, max|gradient of the tensor|), one coordinate per tensor."""
    tensors, stats = ref.onnx_tensors(onnx_path)
    folded = ref.fold_batchnorm(model, x)
    pairs = ref.match_parameters(folded, tensors, stats)
    m = ref.use_onnx_values(folded, pairs, tensors).eval()
    named = dict(m.named_parameters())
    gen = np.random.default_rng(7)
    worst = 0.0
    for tname, oname, transposed in pairs:
        g = grads[oname]
        flat = int(gen.integers(g.size))
        index = np.unravel_index(flat, g.shape)
        if transposed:
            index = index[::-1]
        values = []
        for sign in (1, -1):
            with torch.no_grad():
                named[tname][index] += sign * FD_STEP
                values.append(nn.functional.cross_entropy(m(x.double()), y).item())
                named[tname][index] -= sign * FD_STEP
        fd = (values[0] - values[1]) / (2 * FD_STEP)
        worst = max(worst, abs(fd - g.reshape(-1)[flat]) / max(1e-3, np.abs(g).max()))
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--only', default='')
    a = ap.parse_args()
    names = [n for n in a.only.split(',') if n] or NAMES
    for name in names:
        if name not in tv.FIXTURES:
            fail(f'unknown fixture {name}')
        with open(os.path.join(tv.OUT, name + '.io.json')) as f:
            io = json.load(f)
        x = ref.decode_input(io)
        model = rebuild(name)
        with torch.no_grad():
            logits32 = model.eval()(x).numpy()
        stored = np.frombuffer(ref.base64.b64decode(io['logits']), dtype='<f4').reshape(io['logits_shape'])
        if not np.allclose(logits32, stored, rtol=1e-4, atol=1e-5):
            fail(f'{name}: the rebuilt model does not reproduce {name}.io.json; rerun make_tv_fixtures.py first')
        y = ref.labels_for(x.shape[0])
        onnx_path = os.path.join(tv.OUT, name + '.onnx')
        r = ref.gradients(model, onnx_path, x, y)
        fd = fd_check(model, onnx_path, x, y, r['grads'])
        if fd > FD_TOLERANCE:
            fail(f'{name}: central differences disagree with autograd by {fd:.3g}')
        if r['float32_error'] > ref.STABLE:
            fail(f'{name}: PyTorch\'s float32 gradients differ from float64 by {r["float32_error"]:.3g} on this batch')
        doc = {
            'model': name + '.onnx',
            'io': name + '.io.json',
            'labels': y.tolist(),
            'loss': r['loss'],
            'logits_shape': list(r['logits'].shape),
            'logits': ref.b64(r['logits'], '<f8'),
            'grads': {n: {'shape': list(g.shape), 'data': ref.b64(g, '<f4')} for n, g in sorted(r['grads'].items())},
            'fd_max_err': fd,
            'float32_error': r['float32_error'],
            'torch_version': torch.__version__,
            'notes': 'eval mode (BatchNorm folded as exported, Dropout off); CrossEntropyLoss mean over the .io.json '
                     'batch with these labels; computed in float64 with the ONNX weights; logits base64 float64, '
                     'grads base64 float32, little-endian, row-major; keys are ONNX initializers or Identity aliases',
        }
        path = os.path.join(tv.OUT, name + '.grad.json')
        text = json.dumps(doc) + '\n'
        if len(text) > MAX_BYTES:
            fail(f'{path} would be {len(text)} bytes, over the {MAX_BYTES} limit')
        with open(path, 'w') as f:
            f.write(text)
        print(f'{name}: loss {r["loss"]:.6f}, {len(r["grads"])} tensors, fd err {fd:.1e}, {len(text)} bytes',
              file=sys.stderr)


if __name__ == '__main__':
    main()
