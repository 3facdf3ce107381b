#!/usr/bin/env bash
# The ResNet-18 <-> ViT stitching and CKA matrices of issue 12 ("bring your own model"):
# two torchvision models fine-tuned on Fashion-MNIST (resized to their input size, gray
# -> RGB), stitched both ways at their block-level cuts (the stem, every block, the pooled
# features; found from the graphs: see `modelsmith stitch A B --list-cuts`) with the three
# random controls (random sender, random receiver, both random), as
#   lsq   closed-form least-squares stitches (all four pair kinds),
#   task  stitches trained on the task, initialised by least squares,
#   cka   linear CKA, every cut flattened (cka/) and token cuts mean-pooled over their tokens (cka-tokens/).
# Token cuts are stitched as modelsmith's plan says (src/stitch/plan.ts): ResNet image ->
# ViT tokens by a conv onto the ViT's patch grid plus a class token from the pooled
# image, ViT tokens -> ResNet image by dropping the class token and unpatchifying.
#
#   tools/stitch-byom.sh RESNET.onnx VIT.onnx
#
# Both models must take the same input (SIZE x SIZE RGB). Folders: $OUT/<a>--<b>/<mode>
# for both directions, each with matrix.json, heatmaps, run.json and run.log. Every grid
# resumes where it stopped: rerun to go on.
#
# Environment (defaults in brackets):
#   MODES       which matrices ["lsq task cka"]
#   DATA        dataset spec [fashion-mnist]; SIZE images resized to SIZE x SIZE [32], CHANNELS [3]
#   NORM        a --norm preset (model|imagenet|dataset|none) [the models' metadata]
#   LABELS      --labels for exports without label metadata (e.g. 0-9) [none]
#   CONTROLS=0  the trained pair only [1: with the three controls]
#   LSQ_TRAIN_LIMIT / LSQ_TEST_LIMIT   images for the least-squares grids [all]
#   TRAIN_LIMIT / TEST_LIMIT / TASK_EPOCHS / TASK_LR / BATCH   task grids [all, all, 1, 0.001, 256]
#   CKA_SAMPLES [2000], CKA_MEMORY MiB [3072]
#   OUT [runs/stitch-byom], THREADS [2], WORKERS [1], DIST [dist]
# A trial on tiny limits (a minute or two):
#   DATA=fashion-mnist-sample LABELS=0-9 LSQ_TRAIN_LIMIT=64 LSQ_TEST_LIMIT=32 TRAIN_LIMIT=64 TEST_LIMIT=32 \
#     BATCH=32 CKA_SAMPLES=32 OUT=/tmp/byom tools/stitch-byom.sh fixtures/torchvision/tv_resnet18.onnx fixtures/torchvision/tv_vit.onnx
set -euo pipefail
if [ $# -ne 2 ]; then sed -n '2,/^set -euo/p' "$0" | sed '$d;s/^# \{0,1\}//' >&2; exit 2; fi
a_file=$(realpath "$1"); b_file=$(realpath "$2")
cd "$(dirname "$0")/.."
out=${OUT:-runs/stitch-byom}
cli="node ${DIST:-dist}/src/cli/main.js"
input=(--data "${DATA:-fashion-mnist}" --resize "${SIZE:-32}" --channels "${CHANNELS:-3}")
[ -n "${NORM:-}" ] && input+=(--norm "$NORM")
[ -n "${LABELS:-}" ] && input+=(--labels "$LABELS")
limit() { [ -n "${2:-}" ] && echo "$1 $2" || true; }
if [ "${CONTROLS:-1}" = 0 ]; then controls=(); suffix=-trained; else controls=(--controls); suffix=; fi
name() { basename "$1" .onnx; }
for mode in ${MODES:-lsq task cka}; do
  for pair in "$a_file:$b_file" "$b_file:$a_file"; do
    a=${pair%%:*}; b=${pair##*:}
    dir="$out/$(name "$a")--$(name "$b")"
    mkdir -p "$dir"
    case $mode in
      lsq)
        $cli stitch "$a" "$b" "${input[@]}" --mode lsq "${controls[@]}" --batch "${BATCH:-256}" \
          $(limit --train-limit "${LSQ_TRAIN_LIMIT:-}") $(limit --test-limit "${LSQ_TEST_LIMIT:-}") \
          --workers "${WORKERS:-1}" --threads "${THREADS:-2}" -o "$dir/lsq$suffix" --json > "$dir/lsq$suffix.run.json" 2> "$dir/lsq$suffix.run.log" ;;
      task)
        $cli stitch "$a" "$b" "${input[@]}" --mode task --init lsq "${controls[@]}" --epochs "${TASK_EPOCHS:-1}" --lr "${TASK_LR:-0.001}" --batch "${BATCH:-256}" \
          $(limit --train-limit "${TRAIN_LIMIT:-}") $(limit --test-limit "${TEST_LIMIT:-}") \
          --workers "${WORKERS:-1}" --threads "${THREADS:-2}" -o "$dir/task$suffix" --json > "$dir/task$suffix.run.json" 2> "$dir/task$suffix.run.log" ;;
      cka)
        for pool in none tokens; do
          sub=cka$([ "$pool" = tokens ] && echo -tokens || true)$suffix
          $cli cka "$a" "$b" "${input[@]}" --samples "${CKA_SAMPLES:-2000}" --memory "${CKA_MEMORY:-3072}" --pool "$pool" "${controls[@]}" \
            --threads "${THREADS:-2}" -o "$dir/$sub" --json > "$dir/$sub.run.json" 2> "$dir/$sub.run.log"
        done ;;
      *) echo "unknown mode $mode (expected lsq, task or cka)" >&2; exit 2 ;;
    esac
    echo "$mode $(name "$a") -> $(name "$b"): done ($dir)"
  done
done
