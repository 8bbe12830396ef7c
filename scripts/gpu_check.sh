#!/usr/bin/env bash
# Every GPU target of actbench in one call of at most 9 minutes, one line per target
# (`target | value | goal | met/not met/unmeasured`); the stages are in scripts/gpu_check.py.
#   scripts/gpu_check.sh          on one GPU (no Ray needed)
#   scripts/gpu_check.sh --cpu    TRITON_INTERPRET=1 on the CPU, tiny sizes: the same lines, no GPU figures
# A hard limit stops the check with SIGTERM; the lines not yet printed are then printed unmeasured.
set -euo pipefail
cd "$(dirname "$0")/.."
budget=500
if [[ "${1:-}" == "--cpu" ]]; then
  export TRITON_INTERPRET=1 CUDA_VISIBLE_DEVICES=""
  budget=240
fi
exec timeout --signal=TERM --kill-after=10 "$((budget + 25))" "${PYTHON:-python}" scripts/gpu_check.py --budget-s "$budget" "$@"
