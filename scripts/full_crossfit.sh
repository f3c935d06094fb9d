#!/usr/bin/env bash
# The cross-fitted strict teacher and its 10 % student (issue 9; docs/teacher.md "Cross-fitting").
#
#   bash scripts/full_crossfit.sh DATASET [FOLDS] [SEED] [FOLD]     # FOLDS 2, SEED 0 by default
#
# The strict teacher (scripts/full_strict.sh) is tuned on the student's own 10 % of DATASET's slots,
# so on those slots - the only ones the student's teacher terms see - it forecasts windows it was
# tuned on. Here the student's training windows are cut into FOLDS contiguous blocks; teacher k is
# tuned on the other blocks (less every window sharing a slot with block k) + the other NYC dataset
# before validation, with the strict-decay recipe (each target window drawn 8·FOLDS/(FOLDS-1) times,
# so the target keeps its share), and forecasts block k, validation and test. `flowdistill teacher
# crossfit` joins them: each training window from the teacher that never saw it, validation and
# test the mean. The student then trains from it at 10 %, seeds 0, 1, 2, full protocol; its cells
# are kept in docs/results/DATASET/cells/flowdistill-crossfit-teacher/r0.1/ (commit them).
# With FOLD, only that fold teacher is tuned and forecasts (run the folds side by side, one
# thread each; then run again without FOLD). Every step resumes: run it again.
set -euo pipefail

DATASET=${1:?dataset name (nyc-taxi-manhattan or nyc-bike-manhattan)}
FOLDS=${2:-2}
SEED=${3:-0}
ONLY=${4:-}
case "$DATASET" in
  nyc-taxi-manhattan) EXTRA=nyc-bike-manhattan ;;
  nyc-bike-manhattan) EXTRA=nyc-taxi-manhattan ;;
  *) echo "no teacher recipe for $DATASET (nyc-taxi-manhattan or nyc-bike-manhattan)" >&2; exit 2 ;;
esac
if ! [[ "$FOLDS" =~ ^[0-9]+$ ]] || (( FOLDS < 2 )); then
  echo "FOLDS must be a whole number >= 2 (got '$FOLDS')" >&2; exit 2
fi
REPEAT=$(( (8 * FOLDS + FOLDS - 2) / (FOLDS - 1) ))  # 8·K/(K-1), rounded up
KEEP=${FLOWDISTILL_TEACHER_KEEP:-assets/teachers/llm}
SWEEP=${FLOWDISTILL_SWEEP_DIR:-runs/full}
OUT=$SWEEP/teachers
RUN=${RUN:-nice -n 10}
mkdir -p "$OUT"
files=()
for ((K = 1; K <= FOLDS; K++)); do
  [[ -n "$ONLY" && "$ONLY" != "$K" ]] && continue
  NAME=$DATASET-crossfit$FOLDS-f$K-s$SEED
  W=$KEEP/$NAME
  if [[ ! -f $W/teacher.pt ]]; then
    echo "+ fine-tune $DATASET fold $K/$FOLDS seed $SEED (no kept weights in $W)" >&2
    $RUN flowdistill teacher train --dataset "$DATASET" --extra "$EXTRA" --train-ratio 0.1 \
      --out "$OUT/$NAME" --layers 1 --pool train --holdout "$K/$FOLDS" --target-repeat "$REPEAT" \
      --steps 2600 --val-every 200 --val-batches 4 --batch-size 16 --lr 2e-3 --lr-decay 0.5 \
      --lr-decay-every 3 --seed "$SEED" --threads 1 --resume
    mkdir -p "$W"
    cp "$OUT/$NAME/teacher.json" "$OUT/$NAME/teacher.pt" "$W/"
  fi
  F=$OUT/$NAME.npz
  if [[ ! -f $F ]]; then
    echo "+ forecast the held-out block, validation and test with $W" >&2
    $RUN flowdistill teacher predict --model "$W" --splits train,val,test --out "$F" --threads 1 \
      --resume ${FLOWDISTILL_DATA_DIR:+--data-dir "$FLOWDISTILL_DATA_DIR"}
  fi
  files+=("$F")
done
[[ -n "$ONLY" ]] && exit 0
JOINED=$OUT/$DATASET-crossfit$FOLDS-s$SEED.npz
[[ -f $JOINED ]] || flowdistill teacher crossfit "${files[@]}" --out "$JOINED" --dataset "$DATASET" \
  --train-ratio 0.1 ${FLOWDISTILL_DATA_DIR:+--data-dir "$FLOWDISTILL_DATA_DIR"}
bash "$(dirname "$0")/student_from_teacher.sh" "$DATASET" "$JOINED" flowdistill-crossfit-teacher
