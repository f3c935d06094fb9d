#!/usr/bin/env bash
# The main job on the default dataset (nyc-taxi-manhattan 2019, 10 % training data), sized for 2 CPU
# cores (11 minutes including the install, measured in a fresh clone on 2 idle cores):
#   1. the historical average and STID, trained on the first 10 % of 2019,
#   2. the FlowDistill student, trained on the same 10 % and distilled from the headline's ensemble
#      teacher — the LLM teacher (SmolLM2, tuned on the taxi slots before validation + Citi Bike)
#      averaged with STID fitted on the same taxi slots — through its forecasts for the student's
#      training windows (assets/teachers/…, 5 MB: made by `flowdistill bench headline` and
#      `flowdistill teacher slim`; README "The teacher file the demo ships" says how to remake it),
#   3. the test table (the teacher's own test score comes from the file's metadata).
# TRAIN_TEACHER=1 makes that teacher here instead (about 1.5 CPU-hours); SEED, OUT,
# STUDENT_EPOCHS and THREADS override the defaults. The steps run one after another, so each takes
# every core (THREADS, default: all of them); set THREADS=1 when another heavy job shares the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export FLOWDISTILL_DATA_DIR=${FLOWDISTILL_DATA_DIR:-$(cd .. && pwd)/shared/data}
export HF_HUB_OFFLINE=1
OUT=${OUT:-runs/demo}
SEED=${SEED:-0}
EPOCHS=${STUDENT_EPOCHS:-100}
TEACHER=${TEACHER:-assets/teachers/nyc-taxi-manhattan-2019-r0.1-ensemble.npz}
THREADS=${THREADS:-$(nproc)}
mkdir -p "$OUT"

flowdistill data info nyc-taxi-manhattan
if [ "${TRAIN_TEACHER:-0}" = "1" ]; then
  # The wide teacher of the headline: taxi slots before validation + Citi Bike, 1 SmolLM2 layer.
  flowdistill teacher train --out "$OUT/teacher" --layers 1 --pool val --extra nyc-bike-manhattan \
    --steps 2600 --val-every 200 --val-batches 4 --batch-size 16 --lr 2e-3 --threads "$THREADS" --force
  flowdistill teacher predict --model "$OUT/teacher" --splits train,val,test --out "$OUT/teacher/teacher.npz" --threads "$THREADS" --force
  # STID on the same taxi slots (ratio 0.8 = every slot before validation), then the average
  flowdistill train --model stid --train-ratio 0.8 --out "$OUT/stid-wide" --quiet --threads "$THREADS" --force \
    --save-teacher "$OUT/stid-wide/teacher.npz"
  flowdistill teacher ensemble "$OUT/teacher/teacher.npz" "$OUT/stid-wide/teacher.npz" \
    --out "$OUT/ensemble.npz" --force
  TEACHER="$OUT/ensemble.npz"
fi
flowdistill train --model ha --out "$OUT/ha" --quiet --force
flowdistill train --model stid --seed "$SEED" --epochs "$EPOCHS" --out "$OUT/stid" --quiet --threads "$THREADS" --force
flowdistill distill --teacher "$TEACHER" --seed "$SEED" --epochs "$EPOCHS" --out "$OUT/student" --quiet --threads "$THREADS" --force
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
load = lambda name: json.loads((out / name / "metrics.json").read_text())
student, stid, ha = load("student"), load("stid"), load("ha")
t = student["teacher"]
rows = [("FlowDistill student", student["test"]), ("STID", stid["test"]),
        ("historical average", ha["test"]), (f"teacher: {t['model']}", t.get("test") or {})]
print(f"\nnyc-taxi-manhattan 2019, train ratio {student['config']['run']['train_ratio']}, "
      f"seed {student['config']['run']['seed']}, test windows")
print(f"{'model':34s} {'MAE':>8s} {'RMSE':>8s}")
for name, m in rows:
    if m:
        print(f"{name:34s} {m['mae']:8.3f} {m['rmse']:8.3f}")
gain = 100 * (stid["test"]["mae"] - student["test"]["mae"]) / stid["test"]["mae"]
print(f"\nstudent vs STID: {gain:+.1f} % MAE ({'better' if gain > 0 else 'not better'}); one seed — "
      "docs/results.md has the three-seed headline")
PY
