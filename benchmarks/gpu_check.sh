#!/usr/bin/env bash
# The one-shot GPU check (issue #22): the CUDA-relevant tests, the demo on CUDA, `bench` on vit_b16
# (bf16), a synthetic 224-px VTAB-shaped task per method, packed runs (--per-device 1, 2, 4, 8) and
# --compile on and off, in at most 10 minutes on one GPU; one JSON under benchmarks/results/.
#
#     bash benchmarks/gpu_check.sh            # on a machine with a GPU: benchmarks/results/gpu_check.json
#     bash benchmarks/gpu_check.sh --smoke    # every step at toy size on CPU (CI): gpu_check_smoke.json
#
# Uses the project's .venv when there is one (`make install` makes it), else the python on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
if ! "$PY" -c "import alore_bench" 2>/dev/null; then
  echo "gpu_check: alore_bench is not installed for $PY: run make install first" >&2
  exit 2
fi
# One command for everything: the steps write the JSON as they finish, so a cut keeps what was measured.
exec timeout --signal=INT 600 "$PY" benchmarks/gpu_check.py "$@"
