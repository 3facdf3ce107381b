#!/usr/bin/env bash
# Base models for the LEGO and stitching experiments (issues 5 and 6), trained on full
# Fashion-MNIST (Debian package dataset-fashion-mnist) into runs/models/. Short runs:
# those experiments compare a model with its own components and stitches, so the base
# models need to be good, not the best they can be. Resumable (--resume): rerun to go on.
set -euo pipefail
cd "$(dirname "$0")/.."
out=runs/models
mkdir -p "$out"
cli="node ${DIST:-dist}/src/cli/main.js"
common=(--data fashion-mnist --batch 128 --lr 0.05 --optimizer sgd --nesterov --weight-decay 5e-4
        --schedule cosine --warmup 0.5 --augment crop:2,flip --threads 2 --resume)
run() { local name=$1; shift; [ -f "$out/$name.onnx" ] || $cli train "$@" "${common[@]}" -o "$out/$name.onnx" --json > "$out/$name.json" 2> "$out/$name.log"; }
# Epoch counts: what fitted one 3-hour session on 2 cores (2026-11-23), shared with the
# experiments; ResNet-50 w0.25 took 25 min for its epoch, shared.
# stitching: two ResNet(1,1,1,1) and one ResNet(2,2,2,2), width 0.5, different seeds.
# ResNet(2,2,2,2) is ResNet-18's architecture (zoo `resnet18` = basic blocks [2,2,2,2]),
# so r2222-s2 is also the LEGO experiments' ResNet-18 w0.5.
run r1111-s0 resnet --blocks 1,1,1,1 --width 0.5 --epochs ${R1111_EPOCHS:-3} --seed 0
run r1111-s1 resnet --blocks 1,1,1,1 --width 0.5 --epochs ${R1111_EPOCHS:-3} --seed 1
run r2222-s2 resnet --blocks 2,2,2,2 --width 0.5 --epochs ${R2222_EPOCHS:-2} --seed 2
# LEGO: the issue's other architectures
run vgg16-w0.5 vgg16 --width 0.5 --epochs ${VGG_EPOCHS:-2} --seed 0
run resnet50-w0.25 resnet50 --width 0.25 --epochs ${R50_EPOCHS:-2} --seed 0
run inception-w0.25 inception --width 0.25 --epochs ${INCEPTION_EPOCHS:-1} --seed 0
# LEGO: the PyTorch-exported VGG-style fixture (fixtures/torch), fine-tuned on the full set
run vgg-small-ft fixtures/torch/vgg_small.onnx --epochs 2 --seed 0
