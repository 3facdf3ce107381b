#!/usr/bin/env bash
# Model LEGO disassembly on full Fashion-MNIST (README "Results … Model LEGO", issue 5):
# tasks {0}, {0-2}, {3-9}, {1,5,7} of every base model of tools/train-models.sh, 50
# samples per class, default thresholds. One JSON per model and task in
# runs/lego-full/<model>/; finished ones are skipped (rerun to go on). Then prints the
# table: node tools/lego-table.mjs runs/lego-full
#   MODELS="vgg16-w0.5 ..." to choose; EXTRA="--recalibrate none" for other settings (own OUT folder).
set -euo pipefail
cd "$(dirname "$0")/.."
m=runs/models
out=${OUT:-runs/lego-full}
cli="node ${DIST:-dist}/src/cli/main.js"
for model in ${MODELS:-vgg16-w0.5 r2222-s2 resnet50-w0.25 inception-w0.25 vgg-small-ft}; do
  [ -f "$m/$model.onnx" ] || { echo "skip $model: $m/$model.onnx not trained yet"; continue; }
  mkdir -p "$out/$model"
  for task in 0 0-2 3-9 1,5,7; do
    f="$out/$model/task-${task//,/_}.json"
    [ -f "$f" ] && continue
    $cli disassemble "$m/$model.onnx" --data fashion-mnist --task "$task" --samples 50 ${EXTRA:-} --threads 2 \
      -o "$out/$model/task-${task//,/_}.onnx" --json > "$f.tmp" 2> "$out/$model/task-${task//,/_}.log"
    mv "$f.tmp" "$f"
  done
done
node tools/lego-table.mjs "$out"
