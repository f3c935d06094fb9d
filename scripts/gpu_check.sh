#!/usr/bin/env bash
# The CUDA path end to end on one GPU, nyc-taxi-manhattan at 10 %, seed 0 (a path check, not a
# result): the LLM teacher fine-tuned in bfloat16 and its forecasts, the student distilled from
# them, STID, and the scalability experiment, every step with --device cuda.
#
#   bash scripts/gpu_check.sh                 # on a machine with a GPU; outputs in $OUT
#   BACKBONE=path/to/hf-folder bash scripts/gpu_check.sh
#   DEV=cpu STEPS=20 EPOCHS=1 bash scripts/gpu_check.sh     # a dry run on CPU
#
# BACKBONE defaults to smollm2-135m (the installed GGUF); docs/gpu-check/ holds a run with a tiny
# random Llama + the real tokenizer (the GGUF did not fit the GPU machine's file transfer).
# Runs from a source tree (PYTHONPATH=src) so the GPU image's own torch is used.
set -uo pipefail
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
export FLOWDISTILL_DATA_DIR=${FLOWDISTILL_DATA_DIR:-$PWD/../shared/data}
export FLOWDISTILL_GIT_REVISION=${REV:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
BACKBONE=${BACKBONE:-smollm2-135m}
DEV=${DEV:-cuda}; STEPS=${STEPS:-400}; EP=${EPOCHS:-100}; O=${OUT:-/tmp/devout}; W=/tmp/devwork; rm -rf $W; mkdir -p $O $W
FD="python3 -m flowdistill"
step(){ echo; echo "=== $* [$(date +%T)]"; cp $W/teacher/teacher.json $O/ 2>/dev/null; cp $W/student/metrics.json $O/student-metrics.json 2>/dev/null; cp $W/stid/metrics.json $O/stid-metrics.json 2>/dev/null; }
nvidia-smi -L 2>/dev/null; nproc
python3 -c "import torch,transformers,peft;print('torch',torch.__version__,'transformers',transformers.__version__,'peft',peft.__version__,'cuda',torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
step teacher train; /usr/bin/time -f "%e s wall" $FD teacher train --dataset nyc-taxi-manhattan --backbone "$BACKBONE" --layers ${LAYERS:-0} --pool val --train-ratio 0.1 --steps $STEPS --val-every 100 --val-batches 4 --batch-size 16 --device $DEV --dtype bfloat16 --seed 0 --out $W/teacher 2>&1 | grep -v "it/s\]" | tail -n 15
step teacher predict; /usr/bin/time -f "%e s wall" $FD teacher predict --model $W/teacher --splits all --out $W/teacher.npz --device $DEV 2>&1 | tail -n 5
step distill; /usr/bin/time -f "%e s wall" $FD distill --teacher $W/teacher.npz --dataset nyc-taxi-manhattan --train-ratio 0.1 --seed 0 --epochs $EP --device $DEV --quiet --out $W/student 2>&1 | tail -n 8
step stid; /usr/bin/time -f "%e s wall" $FD train --model stid --dataset nyc-taxi-manhattan --train-ratio 0.1 --seed 0 --epochs $EP --device $DEV --quiet --out $W/stid 2>&1 | tail -n 8
step scalability; /usr/bin/time -f "%e s wall" $FD bench scalability --dataset nyc-taxi-manhattan --out $W/scal --seeds 0 --device $DEV --quiet --no-publish 2>&1 | tail -n 5
step collect  # step() copies the finished steps' outputs into $O
find $W/scal -name "scalability.md" -exec cp {} $O/scalability.md \; ; find $W/scal -name "scalability.json" -exec cp {} $O/scalability.json \;
ls -la $O
