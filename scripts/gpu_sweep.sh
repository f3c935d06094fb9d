#!/usr/bin/env bash
# Baseline cells of the ratio sweep (issue 9) on a machine with one GPU: one process per
# (dataset, model group, seed), each over RATIOS in ascending order and killed after T seconds;
# kept cells (docs/results/<dataset>/cells/) are skipped, and the cells that finished are packed
# with the logs into $OUT/cells.tgz: `tar -xzf cells.tgz docs` here adds them (each names the GPU).
#
#   REV=$(git rev-parse --short HEAD) bash scripts/gpu_sweep.sh
#   PLAN=plan.txt REV=... bash scripts/gpu_sweep.sh  # lines "nyc-bike-manhattan astgcn 1 0.3,0.4"
#   DEV=cpu SEEDS=0 RATIOS=0.2 GROUPS_=bigst EXTRA="--epochs 1" bash scripts/gpu_sweep.sh  # dry run
#
# On the lent GPU machine the data does not travel with ../shared: copy the two datasets into an
# ignored folder and point FLOWDISTILL_DATA_DIR at it; a .whl folder supplies missing packages.
set -uo pipefail
export PYTHONPATH=$PWD/src HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export FLOWDISTILL_DATA_DIR=${FLOWDISTILL_DATA_DIR:-$PWD/../shared/data}
export FLOWDISTILL_GIT_REVISION=${REV:-dev} OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DEV=${DEV:-cuda}; T=${T:-500}; RATIOS=${RATIOS:-0.2,0.3,0.4,0.7}; O=${OUT:-/tmp/devout}
DATASETS=${DATASETS:-nyc-taxi-manhattan nyc-bike-manhattan}
GROUPS_=${GROUPS_:-astgcn,stmlp,easyst bigst stwa stsgcn}; SEEDS=${SEEDS:-0 1 2}
EXTRA=${EXTRA:-}
if [ -d .whl ] && ! python3 -c "import shapely, pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=$PYTHONPATH:/tmp/site || exit 3
fi
nvidia-smi -L 2>/dev/null; nproc
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -c "import flowdistill.cli" || exit 4
mkdir -p $O /tmp/logs; touch /tmp/started; date +%T
# PLAN: a file of "DATASET GROUP SEED RATIOS" lines, one process each, for cells that differ per
# process; without it, every DATASETS x GROUPS_ x SEEDS process runs RATIOS.
plan(){ if [ -n "${PLAN:-}" ]; then cat "$PLAN"; else
  for D in $DATASETS; do for G in $GROUPS_; do for S in $SEEDS; do echo "$D $G $S $RATIOS"; done; done; done; fi; }
while read -r D G S R; do
  [ -z "$D" ] && continue
  n=$D-${G%%,*}-s$S-r${R%%,*}
  timeout $T python3 -m flowdistill bench ratios --dataset $D --out /tmp/w/$n --threads 1 --quiet \
    --store docs/results/$D/cells --ratios $R --seeds $S --models $G --no-publish --device $DEV $EXTRA \
    < /dev/null > /tmp/logs/$n.log 2>&1 &
done < <(plan)  # not a pipe: the processes must stay children of this shell for `wait`
sleep 20; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv 2>/dev/null; uptime
wait; date +%T
find docs/results -path "*/cells/*" -name "*.json" -newer /tmp/started | sort > /tmp/new
cat /tmp/new
for f in /tmp/logs/*.log; do echo "== $f"; tail -n 3 $f; done
# the cells cut at T: how far each got, to size the next loan
python3 - <<'PY' | tee /tmp/logs/unfinished.txt
import glob, os, torch
for f in sorted(glob.glob("/tmp/w/*/runs/*/r*/s*/checkpoints/last.pt")):
    if os.path.exists(f.rsplit("/checkpoints/", 1)[0] + "/metrics.json"):
        continue  # finished
    c = torch.load(f, map_location="cpu", weights_only=False)
    h = c.get("history") or [{}]
    print(f"unfinished {'/'.join(f.split('/')[3:4] + f.split('/')[5:8])}: epoch {c.get('epoch')}, "
          f"{c.get('seconds', 0) / max(1, len(h)):.1f} s/epoch, best val MAE {c.get('best_val_mae')}")
PY
tar -czf $O/cells.tgz -T /tmp/new -C /tmp logs; ls -la $O
