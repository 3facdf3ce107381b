#!/usr/bin/python3
"""Make fixtures/torch/resize.json: PyTorch's antialiased bilinear resize
(F.interpolate(mode='bilinear', align_corners=False, antialias=True), what torchvision's
Resize does) of small random images, up and down, square and not, to check
src/data/view.ts against. Run: /usr/bin/python3 tools/torch/make_resize_fixture.py"""
import json
import os

import torch
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'fixtures', 'torch', 'resize.json')
CASES = [((5, 7), (9, 4)), ((28, 28), (64, 64)), ((28, 28), (13, 13)), ((28, 28), (32, 48)), ((17, 9), (17, 9)), ((32, 32), (7, 11))]


def main():
    g = torch.Generator().manual_seed(7)
    cases = []
    for (h0, w0), (h1, w1) in CASES:
        x = torch.rand(1, 1, h0, w0, generator=g)
        y = F.interpolate(x, size=(h1, w1), mode='bilinear', align_corners=False, antialias=True)
        cases.append({'from': [h0, w0], 'to': [h1, w1], 'x': [round(v, 7) for v in x.flatten().tolist()],
                      'y': [round(v, 7) for v in y.flatten().tolist()]})
    with open(OUT, 'w') as f:
        json.dump({'torch': torch.__version__, 'cases': cases}, f)


if __name__ == '__main__':
    main()
