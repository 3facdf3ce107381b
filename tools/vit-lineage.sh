#!/bin/sh
# The ViT lineage measurements of issue 12 (README "Lineage on ViT zoos"): two ViT zoos on
# Fashion-MNIST (3 trees x 21 models; full fine-tuning and LoRA ranks 4/8), each also
# written as Hugging Face folders with model cards, then lineage with the defaults and
# with the reference options. Resumable: rerun after an interruption and finished
# models are read back, not retrained. Niced; about half an hour per zoo on two shared
# cores.
#
#   sh tools/vit-lineage.sh            # zoos in runs/zoo/, results in runs/lineage-vit/
#   STAGE=score sh tools/vit-lineage.sh   # only the lineage runs (zoos already made)
#   DIST=runs/dist-run sh tools/vit-lineage.sh   # run a copy of dist/ (keep compiling meanwhile)
set -e
CLI="node ${DIST:-dist}/src/cli/main.js"
ZOOS=${ZOOS:-runs/zoo}
OUT=${OUT:-runs/lineage-vit}
SEED=${SEED:-1}
COMMON="--arch vit --data fashion-mnist --trees 3 --children 4 --depth 2 --batch 64 --steps 120 --root-steps 600 --seed $SEED --hf"
REF="--mode ft --signal kurtosis --direction parent-higher --placement arborescence"
mkdir -p "$OUT"
if [ "${STAGE:-all}" != score ]; then
  nice -n 10 $CLI lineage-zoo $COMMON -o "$ZOOS/vit-ft-s$SEED"
  nice -n 10 $CLI lineage-zoo $COMMON --lowrank 4,8 -o "$ZOOS/vit-lora-s$SEED"
fi
[ "${STAGE:-all}" = train ] && exit 0
for kind in ft lora; do
  zoo="$ZOOS/vit-$kind-s$SEED"
  ref="$REF"
  [ $kind = lora ] && ref="--mode lowrank --signal kurtosis --direction parent-higher --placement arborescence"
  nice -n 10 $CLI lineage "$zoo" --clusters 3 --truth "$zoo/truth.json" -o "$OUT/$kind-default" --json > "$OUT-$kind-default.json"
  nice -n 10 $CLI lineage "$zoo" --clusters 3 --truth "$zoo/truth.json" $ref -o "$OUT/$kind-reference" --json > "$OUT-$kind-reference.json"
  nice -n 10 $CLI lineage "$zoo" --truth "$zoo/truth.json" -o "$OUT/$kind-default-k" --json > "$OUT-$kind-default-k.json"
  # the Hugging Face folders: no --truth, scored from the models' README.md cards
  nice -n 10 $CLI lineage "$zoo-hf" --clusters 3 -o "$OUT/$kind-hf" --json > "$OUT-$kind-hf.json"
done
