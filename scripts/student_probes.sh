#!/usr/bin/env bash
# Why does the student trail STID at 10 %? One factor at a time on the student trained WITHOUT a
# teacher (so the teacher's quality does not enter), nyc-taxi-manhattan 2019, 10 %, seed 0, the full
# protocol (up to 100 epochs, patience 15). Finished probes are skipped; the table is printed at the
# end (python scripts/student_probes.py-style summary inline). docs/design-decisions.md has the numbers.
#   bash scripts/student_probes.sh [OUT] [THREADS]
set -euo pipefail
OUT=${1:-runs/probes}
THREADS=${2:-1}
SEED=${SEED:-0}
mkdir -p "$OUT"
probe() {  # name, extra args...
  local name=$1; shift
  if [ ! -f "$OUT/$name/metrics.json" ]; then
    flowdistill distill --no-teacher --seed "$SEED" --threads "$THREADS" --quiet --out "$OUT/$name" "$@"
  fi
}
probe no-ib --no-ib                                   # deterministic MLP: no noise, no KL
probe kl0 --set lambda_kl=0                           # noise kept, KL weight 0
probe d32 --set embed_dim=32 --set bottleneck=64      # STID's width (4 x 32 = 128)
probe reg-only --no-spatial --no-temporal             # L_reg + KL only
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'probe':12s} {'val MAE':>8s} {'test MAE':>9s} {'test RMSE':>9s} {'epochs':>6s} {'params':>8s}")
for d in sorted(p for p in out.iterdir() if (p / "metrics.json").exists()):
    m = json.loads((d / "metrics.json").read_text())
    print(f"{d.name:12s} {m['val']['mae']:8.3f} {m['test']['mae']:9.3f} {m['test']['rmse']:9.3f} "
          f"{m['fit']['epochs_run']:6d} {m['params']:8d}")
PY
