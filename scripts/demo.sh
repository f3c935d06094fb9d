#!/usr/bin/env bash
# The main job on the default dataset (nyc-taxi-manhattan 2019, 10 % training data):
#   1. fine-tune the LLM teacher (SmolLM2-135M-Instruct, LoRA, city-batched prompts) on the training split,
#   2. write its forecasts for every window as a teacher file,
#   3. distil them into the VIB-MLP student,
#   4. print the test table (student, teacher, historical average).
# Sizes are set for a 2-core CPU; TEACHER_STEPS / TEACHER_LAYERS / STUDENT_EPOCHS override them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export FLOWDISTILL_DATA_DIR=${FLOWDISTILL_DATA_DIR:-$(cd .. && pwd)/shared/data}
OUT=${OUT:-runs/demo}
RATIO=${RATIO:-0.1}
mkdir -p "$OUT"

flowdistill data info nyc-taxi-manhattan
flowdistill train --model ha --train-ratio "$RATIO" --out "$OUT/ha" --quiet
flowdistill teacher train --train-ratio "$RATIO" --layers "${TEACHER_LAYERS:-1}" \
  --steps "${TEACHER_STEPS:-150}" --val-every 50 --val-batches 1 --batch-size 8 --lr 3e-3 \
  --out "$OUT/teacher"
# the student needs the teacher on the training windows; validation and test are scored for the table
flowdistill teacher predict --model "$OUT/teacher" --splits train,val,test --batch-size 64 \
  --out "$OUT/teacher/teacher.npz"
flowdistill distill --teacher "$OUT/teacher/teacher.npz" --train-ratio "$RATIO" --seed 0 \
  --epochs "${STUDENT_EPOCHS:-40}" --patience 8 --out "$OUT/student"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
student = json.loads((out / "student" / "metrics.json").read_text())
ha = json.loads((out / "ha" / "metrics.json").read_text())
rows = [("FlowDistill student", student["test"]),
        (f"teacher ({student['teacher']['model']})", student["teacher"]["test"]),
        ("historical average", ha["test"])]
print(f"\nnyc-taxi-manhattan 2019, train ratio {student['config']['run']['train_ratio']}, test windows")
print(f"{'model':32s} {'MAE':>8s} {'RMSE':>8s}")
for name, m in rows:
    print(f"{name:32s} {m['mae']:8.3f} {m['rmse']:8.3f}")
PY
