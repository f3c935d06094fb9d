#!/usr/bin/env bash
# Sets everything up, then runs the linter and the test suite on the real data in ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export FLOWDISTILL_DATA_DIR=${FLOWDISTILL_DATA_DIR:-$(cd .. && pwd)/shared/data}
export TQDM_DISABLE=1
ruff check src tests benchmarks
python -m pytest -q -m "not slow" "$@"
