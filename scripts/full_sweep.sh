#!/usr/bin/env bash
# The paper's experiments at the full protocol (issue 9), for one dataset, in parts.
#
#   bash scripts/full_sweep.sh DATASET TEACHER_FILE PART
#
# DATASET: nyc-taxi-manhattan or nyc-bike-manhattan. TEACHER_FILE: the LLM teacher's forecasts for
# that dataset over every window (`bash scripts/full_teachers.sh DATASET` prints its path; it is
# checked against the dataset), or - for the parts that train only baselines.
# PART: 1..7 (see below), or "list" to print the commands without running them.
#
# Every part trains into the same run folder (runs/full/DATASET), so a finished cell is reused by
# every later part and an interrupted cell resumes from its last epoch checkpoint: run a part again
# after a crash or Ctrl-C. Parts 1-6 only train (no files under docs/); part 7 reuses all of them,
# runs the 10 % experiments, writes docs/results/DATASET/*.json and regenerates docs/results.md.
# Two parts (e.g. the two datasets) can run side by side; each uses one thread (`--threads 1`).
set -euo pipefail

DATASET=${1:?dataset name}
TEACHER=${2:?teacher file}
PART=${3:?part 1..7 or list}
OUT=${FLOWDISTILL_SWEEP_DIR:-runs/full}/$DATASET
# The ratios (Table 3). FLOWDISTILL_SWEEP_RATIOS=0.1 runs one column first (e.g. every
# baseline at 10 %, which the 10 % experiments of part 7 reuse); the full list fills the rest later.
RATIOS=${FLOWDISTILL_SWEEP_RATIOS:-0.1,0.2,0.3,0.4,0.7}
if ! [[ "$RATIOS" =~ ^0?\.[0-9]+(,0?\.[0-9]+)*$ ]]; then
  echo "FLOWDISTILL_SWEEP_RATIOS must be fractions like 0.1,0.2 (got '$RATIOS')" >&2; exit 2
fi
SEEDS=0,1,2
# Each finished run's metrics.json is also kept in docs/results/DATASET/cells/ (commit it): a later
# session, whose runs/ folder is gone, skips those cells. The teacher is matched by its forecasts'
# fingerprint, so the file made again by scripts/full_teachers.sh from the kept weights serves.
STORE=${FLOWDISTILL_SWEEP_STORE:-docs/results/$DATASET/cells}
COMMON=(--dataset "$DATASET" --out "$OUT" --threads 1 --quiet --store "$STORE")
# "-": no teacher file yet; parts 1 and 3-6 (baselines only) run without one
[[ "$TEACHER" == "-" ]] || COMMON+=(--teacher "$TEACHER")
RUN=${RUN:-nice -n 10}

ratios() {  # one group of models over every ratio and seed; published only by part 7
  echo "$RUN flowdistill bench ratios ${COMMON[*]} --ratios $RATIOS --seeds $SEEDS --models $1 --no-publish"
}

commands() {
  case "$1" in
    1) ratios ha,last-value,stid ;;
    # + its no-teacher control ("teacher kept by validation") and the student whose teacher is
    # switched off once it validates 3 % below it (reused where that switch cannot fire)
    2) ratios "flowdistill --control --outgrown" ;;
    3) ratios bigst ;;
    4) ratios astgcn,stmlp,easyst ;;   # per ratio and seed, ASTGCN (their teacher) runs first
    5) ratios stwa ;;
    6) ratios stsgcn ;;
    7)
      echo "$RUN flowdistill bench ratios ${COMMON[*]} --ratios $RATIOS --seeds $SEEDS --control --outgrown"
      echo "$RUN flowdistill bench horizons ${COMMON[*]} --seeds $SEEDS --train-ratio 0.1"
      echo "$RUN flowdistill bench volume ${COMMON[*]} --seeds $SEEDS --train-ratio 0.1"
      echo "$RUN flowdistill bench ablation ${COMMON[*]} --seeds $SEEDS --train-ratio 0.1"
      # fewer seeds for the sweeps the issue allows it for; the tables say so
      echo "$RUN flowdistill bench hparams ${COMMON[*]} --seeds 0 --train-ratio 0.1"
      echo "$RUN flowdistill bench scalability ${COMMON[*]} --seeds 0"
      echo "$RUN flowdistill bench report --runs docs/results --out docs/results.md"
      ;;
    *) echo "unknown part $1 (1..7)" >&2; exit 2 ;;
  esac
}

if [[ "$PART" == "list" ]]; then
  for p in 1 2 3 4 5 6 7; do echo "# part $p"; commands "$p"; done
  exit 0
fi
commands "$PART" | while read -r line; do
  echo "+ $line" >&2
  bash -c "$line" < /dev/null
done
