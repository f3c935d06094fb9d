#!/usr/bin/env bash
# The FlowDistill student at 10 % from a given teacher file, full protocol (issue 9).
#
#   bash scripts/student_from_teacher.sh DATASET TEACHER_FILE ROW [SEEDS]   # SEEDS default "0 1 2"
#
# Used by scripts/full_strict.sh, scripts/full_crossfit.sh and for other teachers (e.g. the
# two-block mean of the wide-decay-2l recipe). The runs go to runs/full/DATASET-ROW (a student
# folder made with another teacher is refused, so every teacher gets its own); each finished cell
# is kept in docs/results/DATASET/cells/ROW/r0.1/sSEED.json (commit it), where the progress report
# shows it among the FlowDistill variants. A cell kept by an earlier session is reused, a cut one
# resumes: run it again.
set -euo pipefail

DATASET=${1:?dataset name (nyc-taxi-manhattan or nyc-bike-manhattan)}
TEACHER=${2:?teacher file (.npz)}
ROW=${3:?row name, e.g. flowdistill-strict-teacher}
SEEDS=${4:-0 1 2}
RUN=${RUN:-nice -n 10}
[[ -f $TEACHER ]] || { echo "no teacher file $TEACHER" >&2; exit 2; }
[[ $ROW =~ ^[a-z0-9@=.-]+$ ]] || { echo "row name '$ROW': lower-case letters, digits, -@=. only" >&2; exit 2; }
OUT=${FLOWDISTILL_SWEEP_DIR:-runs/full}/$DATASET-${ROW#flowdistill-}
KEPT=${FLOWDISTILL_RESULTS_DIR:-docs/results}/$DATASET/cells/$ROW/r0.1
mkdir -p "$OUT/cells/flowdistill/r0.1" "$KEPT"
for f in "$KEPT"/s*.json; do [[ -e $f ]] && cp -n "$f" "$OUT/cells/flowdistill/r0.1/"; done
$RUN flowdistill bench ratios --dataset "$DATASET" --out "$OUT" --threads 1 --quiet \
  --store "$OUT/cells" --teacher "$TEACHER" --ratios 0.1 --seeds "${SEEDS// /,}" \
  --models flowdistill --no-publish
for f in "$OUT"/cells/flowdistill/r0.1/s*.json; do [[ -e $f ]] && cp -n "$f" "$KEPT/"; done
ls "$KEPT"
