#!/usr/bin/python3
"""Make the committed PyTorch-exported ONNX fixtures in fixtures/torch/.

Run from anywhere with Debian's torch (python3-torch) and onnx (python3-onnx):

    /usr/bin/python3 tools/torch/make_fixtures.py

For each small model (1x28x28 input, 10 classes) it writes
  <name>.onnx         exported with do_constant_folding=True (the exporter's defaults)
  <name>.nofold.onnx  exported with do_constant_folding=False and training=PRESERVE
  <name>.io.json      a fixed input batch and the PyTorch logits for it
and a README.md listing the ONNX operators found in each file.

Why PRESERVE for the nofold file: in eval-mode export the classic exporter always
fuses Conv+BatchNormalization (a peephole pass that runs whether or not constant
folding is on), so without it no fixture would contain BatchNormalization at all.
The model is in eval mode, so the nodes are inference BatchNormalization
(training_mode=0) and Dropout is dropped exactly as in the folded file.
"""

import base64
import inspect
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, '..', '..', 'fixtures', 'torch'))
OPSET = 17
BATCH = 4
INPUT_SEED = 1234
MAX_BYTES = 500 * 1024


def conv_bn_relu(cin, cout, k=3, stride=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class VggSmall(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(1, 8), *conv_bn_relu(8, 8), nn.MaxPool2d(2),
            *conv_bn_relu(8, 16), *conv_bn_relu(16, 16), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 7 * 7, 32), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(32, classes))

    def forward(self, x):
        x = self.features(x)
        # The exporter turns this into Shape/Gather/Unsqueeze/Concat/Reshape.
        x = x.view(x.size(0), -1)
        return self.classifier(x)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(1, 8))
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class InceptionModule(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.b1 = nn.Sequential(*conv_bn_relu(cin, 8, 1))
        self.b2 = nn.Sequential(*conv_bn_relu(cin, 8, 1), *conv_bn_relu(8, 12, 3))
        self.b3 = nn.Sequential(*conv_bn_relu(cin, 4, 1), *conv_bn_relu(4, 6, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), *conv_bn_relu(cin, 6, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class InceptionSmall(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(1, 8), nn.MaxPool2d(2))
        self.inception = InceptionModule(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 + 12 + 6 + 6, classes)

    def forward(self, x):
        x = self.inception(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


MODELS = [('vgg_small', VggSmall), ('resnet_small', ResNetSmall), ('inception_small', InceptionSmall)]

WHAT = {
    'vgg_small': 'VGG-style CNN: Conv+BN+ReLU blocks, MaxPool, `x.view(x.size(0), -1)` '
                 '(Shape/Gather/Unsqueeze/Concat/Reshape), Linear-ReLU-Dropout-Linear (Gemm).',
    'resnet_small': 'Two residual basic blocks (the second strided, with a 1x1 strided conv '
                    'shortcut): residual Add, AdaptiveAvgPool2d(1), torch.flatten, Linear.',
    'inception_small': 'One Inception module: four branches (1x1; 1x1-3x3; 1x1-5x5; '
                       'maxpool-1x1) joined by torch.cat (Concat), then pooling and Linear.',
}


def give_bn_statistics(model, gen):
    """Non-trivial BN affine parameters and running statistics, so that a wrong BN
    fold or a BN treated as identity changes the logits visibly."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0.0, 0.2, generator=gen)
            m.momentum = 0.5
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(16, 1, 28, 28, generator=gen) * 1.7 + 0.3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1  # back to the default, so the exported attribute is the usual 0.9
    model.eval()


def export(model, sample, path, fold):
    kwargs = dict(
        input_names=['input'], output_names=['logits'],
        dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}},
        opset_version=OPSET, do_constant_folding=fold)
    if not fold:
        kwargs['training'] = torch.onnx.TrainingMode.PRESERVE
    # Newer torch defaults to the dynamo exporter; the classic TorchScript one is the
    # one that emits the Shape/Gather pattern these fixtures are meant to exercise.
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False
    torch.onnx.export(model, sample, path, **kwargs)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        sys.exit(f'{path} is {size} bytes, over the {MAX_BYTES} limit')
    return m


def b64_f32(t):
    return base64.b64encode(t.detach().numpy().astype('<f4').tobytes()).decode('ascii')


def ops_of(m):
    return sorted({n.op_type for n in m.graph.node})


def ort_logits(path, x):
    """The onnxruntime logits, when its Python package happens to be installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=['CPUExecutionProvider'])
    return torch.from_numpy(sess.run(['logits'], {'input': x.numpy()})[0])


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    rows = []
    for index, (name, cls) in enumerate(MODELS):
        model = cls()
        give_bn_statistics(model, torch.Generator().manual_seed(100 + index))
        x = torch.randn(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(INPUT_SEED))
        with torch.no_grad():
            logits = model(x)
        files = {}
        for suffix, fold in (('.onnx', True), ('.nofold.onnx', False)):
            path = os.path.join(OUT, name + suffix)
            files[name + suffix] = (export(model, x, path, fold), os.path.getsize(path))
        io = {'input_shape': list(x.shape), 'input': b64_f32(x),
              'logits': b64_f32(logits), 'logits_shape': list(logits.shape),
              'encoding': 'base64 of little-endian float32, row-major'}
        ort = ort_logits(os.path.join(OUT, name + '.onnx'), x)
        if ort is not None:
            io['ort_logits'] = b64_f32(ort)
            io['ort_max_abs_diff'] = float((ort - logits).abs().max())
        with open(os.path.join(OUT, name + '.io.json'), 'w') as f:
            json.dump(io, f, indent=1)
            f.write('\n')
        params = sum(p.numel() for p in model.parameters())
        rows.append((name, params, files, ort is not None))
        print(f'{name}: {params} params, ' + ', '.join(f'{k} {s} B' for k, (_, s) in files.items()))
    write_readme(rows)


def write_readme(rows):
    exporter = 'classic TorchScript exporter (torch.onnx.export'
    exporter += ', dynamo=False)' if 'dynamo' in inspect.signature(torch.onnx.export).parameters else ')'
    lines = [
        '# PyTorch-exported fixtures',
        '',
        'Generated by `tools/torch/make_fixtures.py`; do not edit by hand. Remake with',
        '',
        '    /usr/bin/python3 tools/torch/make_fixtures.py',
        '',
        '(Debian `python3-torch` and `python3-onnx`; the project itself never needs Python.)',
        '',
        f'- torch {torch.__version__}, onnx {onnx.__version__}, exporter: {exporter}',
        f'- opset {OPSET}; input `input` [N,1,28,28] float32, output `logits` [N,10]; '
        'dynamic batch axis `N` on both',
        '- `torch.manual_seed(0)` for the weights; BatchNorm layers get random affine '
        'parameters and running statistics from a few train-mode batches before `eval()`, '
        'so a wrong BN fold shows in the logits',
        '- `<name>.onnx`: `do_constant_folding=True`, default `training=EVAL` (the exporter '
        'fuses each Conv+BatchNormalization into the Conv)',
        '- `<name>.nofold.onnx`: `do_constant_folding=False` and `training=PRESERVE` on the '
        'eval-mode model, which keeps the BatchNormalization nodes (inference mode, '
        '`training_mode=0`) unfused. The view/flatten of vgg_small exports as '
        'Shape/Gather/Unsqueeze/Concat/Reshape in both files, since the batch axis is dynamic',
        '- `<name>.io.json`: `input` (shape `input_shape` = [4,1,28,28], from '
        f'`torch.Generator().manual_seed({INPUT_SEED})`, standard normal) and the PyTorch '
        '`logits` (shape `logits_shape`), each base64 of little-endian float32 bytes. '
        'Both .onnx files of a model must reproduce these logits (test/torch/fixtures.test.ts '
        'checks to 1e-4 with onnxruntime-node).',
        '',
        'No normalisation metadata: PyTorch exports carry none (users pass --mean/--std).',
        '',
        '| model | params | what it exercises |',
        '|---|---|---|',
    ]
    for name, params, _, _ in rows:
        lines.append(f'| {name} | {params} | {WHAT[name]} |')
    lines += ['', '## Operators in each file', '', '| file | bytes | ONNX operators |', '|---|---|---|']
    for _, _, files, _ in rows:
        for fname, (m, size) in files.items():
            lines.append(f'| {fname} | {size} | {", ".join(ops_of(m))} |')
    if not any(r[3] for r in rows):
        lines += ['', 'onnxruntime for Python was not installed when these were made, so the '
                  '`.io.json` files hold PyTorch logits only.']
    with open(os.path.join(OUT, 'README.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
