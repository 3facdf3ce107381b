#!/usr/bin/python3
"""Make fixtures/torch/vit_tiny.json: tiny torchvision VisionTransformers, their
state_dicts and PyTorch's logits on a fixed batch, to check that `zoo create vit` builds
the same network (same parameter names and shapes, same function).

    /usr/bin/python3 tools/torch/make_vit_fixture.py

Every parameter is randomised (LayerNorm scales, class token and head included, which
torchvision initialises to constants) so a wrong or skipped layer shows in the logits.
torchvision's ViT takes 3-channel square images; the 1x28x28 case swaps conv_proj for a
1-channel Conv2d and tells the module its image size, as a user fine-tuning on
Fashion-MNIST would. Output: {"models": [{"config", "input_shape", "input", "logits",
"logits_shape", "state": {name: {"shape", "data"}}}]}, floats as base64 little-endian
float32.
"""
import base64
import json
import os

import torch
import torch.nn as nn
from torchvision.models.vision_transformer import VisionTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, '..', '..', 'fixtures', 'torch', 'vit_tiny.json'))
BATCH = 3

CONFIGS = [
    # input [C, H, W], patch, layers, heads, hidden, mlp, classes
    dict(input=[1, 28, 28], patch=7, layers=2, heads=2, hidden=16, mlp=24, classes=10),
    dict(input=[3, 32, 32], patch=8, layers=1, heads=4, hidden=12, mlp=20, classes=5),
]


def b64(t):
    return base64.b64encode(t.detach().contiguous().numpy().astype('<f4').tobytes()).decode()


def build(cfg):
    c, h, w = cfg['input']
    assert h == w
    m = VisionTransformer(image_size=h, patch_size=cfg['patch'], num_layers=cfg['layers'], num_heads=cfg['heads'],
                          hidden_dim=cfg['hidden'], mlp_dim=cfg['mlp'], num_classes=cfg['classes'])
    if c != 3:
        m.conv_proj = nn.Conv2d(c, cfg['hidden'], kernel_size=cfg['patch'], stride=cfg['patch'])
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return m.eval()


def main():
    torch.manual_seed(20240512)
    models = []
    for cfg in CONFIGS:
        m = build(cfg)
        x = torch.randn(BATCH, *cfg['input'])
        with torch.no_grad():
            y = m(x)
        state = {k: {'shape': list(v.shape), 'data': b64(v)} for k, v in m.state_dict().items()}
        models.append({'config': cfg, 'input_shape': list(x.shape), 'input': b64(x), 'logits_shape': list(y.shape),
                       'logits': b64(y), 'parameters': sum(p.numel() for p in m.parameters()), 'state': state})
    with open(OUT, 'w') as f:
        json.dump({'torch': torch.__version__, 'models': models}, f)
        f.write('\n')
    print(f'wrote {OUT} ({os.path.getsize(OUT)} bytes)')


if __name__ == '__main__':
    main()
