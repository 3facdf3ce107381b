#!/usr/bin/env bash
# The full-dataset training runs quoted in the README (issue 3): VGG-11 width 0.5 and
# ResNet(1,1,1,1) width 0.5 on Fashion-MNIST (Debian package dataset-fashion-mnist),
# 10 epochs each. Results (JSON, logs, models) go to runs/fmnist/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/fmnist
mkdir -p "$out"
common=(--data fashion-mnist --epochs 10 --batch 128 --lr 0.05 --optimizer sgd --nesterov --weight-decay 5e-4
        --schedule cosine --warmup 0.5 --augment crop:2,flip --seed 0 --threads 2 --resume)
node ${DIST:-dist}/src/cli/main.js train vgg11 --width 0.5 "${common[@]}" -o "$out/vgg11-w0.5.onnx" --json > "$out/vgg11-w0.5.json" 2> "$out/vgg11-w0.5.log"
node ${DIST:-dist}/src/cli/main.js train resnet --blocks 1,1,1,1 --width 0.5 "${common[@]}" -o "$out/resnet1111-w0.5.onnx" --json > "$out/resnet1111-w0.5.json" 2> "$out/resnet1111-w0.5.log"
