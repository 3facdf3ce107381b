#!/usr/bin/env bash
# The stitching and CKA matrices of issue 6 on full Fashion-MNIST (README "Results …
# Stitching"): R1111 -> R1111, R1111 -> R2222 and R2222 -> R1111 with the three random
# controls, as closed-form least-squares stitches, short task-trained stitches
# (initialised by least squares) and linear CKA. Needs the models of
# tools/train-models.sh. Every grid resumes where it stopped: rerun to go on.
#   MODES="lsq cka task" (default all three); LSQ_TRAIN_LIMIT / LSQ_TEST_LIMIT size the
#   least-squares grids, TRAIN_LIMIT / TEST_LIMIT / TASK_EPOCHS the task grids (the
#   reference trains 4 epochs on all 60,000 images: about 370 s per cell here, npm run bench:stitch);
#   CONTROLS=0 for the trained pair only (folders <mode>-trained); TASK_LR (default the
#   reference 0.01), OUT (default runs/stitch-full); STAGES=1 cuts ResNet(2,2,2,2) models
#   (r2222-*) at stage boundaries only (after the stem and after each stage's last block),
#   so their matrices line up with ResNet(1,1,1,1)'s 5 x 5 and cost a quarter as much.
set -euo pipefail
cd "$(dirname "$0")/.."
m=runs/models
out=${OUT:-runs/stitch-full}
mkdir -p "$out"
cli="node ${DIST:-dist}/src/cli/main.js"
pairs=(${PAIRS:-r1111-s0:r1111-s1 r1111-s0:r2222-s2 r2222-s2:r1111-s0})
for mode in ${MODES:-lsq cka task}; do
  for p in "${pairs[@]}"; do
    a=${p%%:*}; b=${p##*:}
    cuts=()
    if [ "${STAGES:-0}" = 1 ]; then
      [[ $a == r2222* ]] && cuts+=(--senders stem,layer1.1,layer2.1,layer3.1,layer4.1)
      [[ $b == r2222* ]] && cuts+=(--receivers stem,layer1.1,layer2.1,layer3.1,features)
    fi
    if [ "${CONTROLS:-1}" = 0 ]; then controls=(); dir="$out/$a--$b/$mode-trained"; else controls=(--controls); dir="$out/$a--$b/$mode"; fi
    mkdir -p "$dir"
    case $mode in
      lsq) $cli stitch "$m/$a.onnx" "$m/$b.onnx" --data fashion-mnist --mode lsq "${controls[@]}" "${cuts[@]}" \
             --train-limit "${LSQ_TRAIN_LIMIT:-2000}" --test-limit "${LSQ_TEST_LIMIT:-5000}" --threads ${THREADS:-2} -o "$dir" --json > "$dir/run.json" 2> "$dir/run.log" ;;
      task) $cli stitch "$m/$a.onnx" "$m/$b.onnx" --data fashion-mnist --mode task --init lsq "${controls[@]}" "${cuts[@]}" \
             --epochs "${TASK_EPOCHS:-1}" --lr "${TASK_LR:-0.01}" --train-limit "${TRAIN_LIMIT:-2000}" --test-limit "${TEST_LIMIT:-2000}" \
             --threads ${THREADS:-2} -o "$dir" --json > "$dir/run.json" 2> "$dir/run.log" ;;
      cka) $cli cka "$m/$a.onnx" "$m/$b.onnx" --data fashion-mnist --samples 2000 --memory 3072 "${controls[@]}" "${cuts[@]}" --threads ${THREADS:-2} \
             -o "$dir" --json > "$dir/run.json" 2> "$dir/run.log" ;;
    esac
  done
done
