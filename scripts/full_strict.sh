#!/usr/bin/env bash
# The strict variant of the full sweep's 10 % student (issue 9; DEVELOPERS "honest results").
#
#   bash scripts/full_strict.sh DATASET [SEEDS]      # SEEDS default "0 1 2"
#
# The sweep's teacher (scripts/full_teachers.sh, recipe wide-decay) is tuned on every DATASET slot
# before validation, so at 10 % it saw target slots the student did not. The strict teacher (recipe
# strict-decay) sees only the student's own 10 % of DATASET's slots (each window drawn 8 times) +
# the other NYC dataset before validation. This script makes its seeds and their mean
# (scripts/full_teachers.sh), then trains the student from it at 10 % with the same seeds, at the
# full protocol, and keeps each finished cell in
# docs/results/DATASET/cells/flowdistill-strict-teacher/r0.1/sSEED.json (commit it), where the
# progress report shows it beside the sweep's rows. With FLOWDISTILL_TEACHER_RECIPE=strict-decay-2l
# the teacher keeps two LLM blocks and the row is flowdistill-strict-2l-teacher. Every step
# resumes: run it again.
set -euo pipefail

DATASET=${1:?dataset name (nyc-taxi-manhattan or nyc-bike-manhattan)}
SEEDS=${2:-0 1 2}
RECIPE=${FLOWDISTILL_TEACHER_RECIPE:-strict-decay}
case "$RECIPE" in
  strict-decay) ROW=flowdistill-strict-teacher ;;
  strict-decay-2l) ROW=flowdistill-strict-2l-teacher ;;
  *) echo "full_strict.sh takes the recipe strict-decay or strict-decay-2l (got $RECIPE)" >&2; exit 2 ;;
esac
MEAN=$(FLOWDISTILL_TEACHER_RECIPE=$RECIPE bash "$(dirname "$0")/full_teachers.sh" "$DATASET" "$SEEDS" | tail -n 1)
bash "$(dirname "$0")/student_from_teacher.sh" "$DATASET" "$MEAN" "$ROW" "$SEEDS"
