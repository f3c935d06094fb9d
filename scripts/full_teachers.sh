#!/usr/bin/env bash
# The LLM teacher file of one dataset for the full sweeps (issue 9).
#
#   bash scripts/full_teachers.sh DATASET [SEEDS]      # SEEDS default "0 1 2"
#
# FLOWDISTILL_TEACHER_RECIPE picks the recipe: "wide" (default; the one every kept cell so far
# used), "wide-decay" (the same with the learning rate halved every 600 steps; docs/teacher.md) or
# "strict-decay" (wide-decay, but tuned on the student's own 10 % of DATASET's slots, each window
# drawn 8 times, + the other NYC dataset before validation: the strict variant, a teacher that saw
# no target slot the 10 % student did not) or "wide-decay-2l" / "strict-decay-2l" (the same with
# the first two blocks of the LLM instead of one: about twice the time per step; docs/teacher.md,
# "Depth").
# Another recipe keeps its weights and files under its own name (DATASET-RECIPE-…).
#
# Each seed is the headline's wide LLM teacher (SmolLM2, 1 block, LoRA; tuned on DATASET's slots
# before validation + the other NYC dataset over the same days; `docs/teacher.md`). Its trained
# tensors (teacher.json + teacher.pt, about 2 MB) are kept in assets/teachers/llm/DATASET-sSEED/ and
# committed, so a later session only forecasts again (about 9 min per seed on 1 thread) instead of
# fine-tuning again (about 45 min per seed). A seed without kept weights is fine-tuned first and
# its weights copied there. Writes runs/full/teachers/DATASET-sSEED-all.npz (every window) and,
# with several seeds, their window-by-window mean runs/full/teachers/DATASET-llm-mean.npz, the
# file `scripts/full_sweep.sh` takes. Every step resumes after an interruption: run it again.
set -euo pipefail

DATASET=${1:?dataset name (nyc-taxi-manhattan or nyc-bike-manhattan)}
SEEDS=${2:-0 1 2}
case "$DATASET" in
  nyc-taxi-manhattan) EXTRA=nyc-bike-manhattan ;;
  nyc-bike-manhattan) EXTRA=nyc-taxi-manhattan ;;
  *) echo "no teacher recipe for $DATASET (nyc-taxi-manhattan or nyc-bike-manhattan)" >&2; exit 2 ;;
esac
RECIPE=${FLOWDISTILL_TEACHER_RECIPE:-wide}
# A decayed recipe with the suffix -2l is the same recipe with two LLM blocks, under its own name.
case "$RECIPE" in
  *-decay-2l) BASE=${RECIPE%-2l}; LAYERS=2; SUFFIX=-2l ;;
  *) BASE=$RECIPE; LAYERS=1; SUFFIX="" ;;
esac
case "$BASE" in
  wide) TAG=""; POOL=val; FLAGS=() ;;
  wide-decay) TAG="-decay"; POOL=val; FLAGS=(--lr-decay 0.5 --lr-decay-every 3) ;;
  strict-decay) TAG="-strict-decay"; POOL=train
    FLAGS=(--lr-decay 0.5 --lr-decay-every 3 --target-repeat 8) ;;
  *) echo "unknown teacher recipe $RECIPE (wide, wide-decay, wide-decay-2l, strict-decay or" \
       "strict-decay-2l)" >&2
     exit 2 ;;
esac
TAG=$TAG$SUFFIX
KEEP=${FLOWDISTILL_TEACHER_KEEP:-assets/teachers/llm}
OUT=${FLOWDISTILL_SWEEP_DIR:-runs/full}/teachers
RUN=${RUN:-nice -n 10}
mkdir -p "$OUT"
files=()
for S in $SEEDS; do
  NAME=$DATASET$TAG-s$S
  W=$KEEP/$NAME
  if [[ ! -f $W/teacher.pt ]]; then
    echo "+ fine-tune $DATASET seed $S, recipe $RECIPE (no kept weights in $W)" >&2
    $RUN flowdistill teacher train --dataset "$DATASET" --extra "$EXTRA" --train-ratio 0.1 \
      --out "$OUT/$NAME" --layers "$LAYERS" --pool "$POOL" --steps 2600 --val-every 200 \
      --val-batches 4 --batch-size 16 --lr 2e-3 --seed "$S" --threads 1 --resume ${FLAGS[@]+"${FLAGS[@]}"}
    mkdir -p "$W"
    cp "$OUT/$NAME/teacher.json" "$OUT/$NAME/teacher.pt" "$W/"
  fi
  F=$OUT/$NAME-all.npz
  if [[ ! -f $F ]]; then
    echo "+ forecast every window with $W" >&2
    # the kept teacher.json names the data folder it was tuned from; FLOWDISTILL_DATA_DIR wins
    $RUN flowdistill teacher predict --model "$W" --splits all --out "$F" --threads 1 --resume \
      ${FLOWDISTILL_DATA_DIR:+--data-dir "$FLOWDISTILL_DATA_DIR"}
  fi
  files+=("$F")
done
if (( ${#files[@]} > 1 )); then
  MEAN=$OUT/$DATASET$TAG-llm-mean.npz
  [[ -f $MEAN ]] || flowdistill teacher ensemble "${files[@]}" --out "$MEAN"
  echo "$MEAN"
else
  echo "${files[0]}"
fi
