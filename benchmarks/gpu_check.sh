#!/usr/bin/env bash
# The GPU check: every method and SAR variant in fp16 and amp against fp32 (on the GPU and
# on the CPU), exact resume on the GPU, and the steps, eval and memory benchmark sections;
# one JSON record. See benchmarks/README.md ("GPU check") and benchmarks/gpu_check.py.
#
#   bash benchmarks/gpu_check.sh [--json gpu_check.json]     # on a CUDA machine
#   bash benchmarks/gpu_check.sh --device cpu --quick        # the dry run (CI)
#
# PYTHON picks the interpreter (default: .venv/bin/python if present, else python).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"; else PY=python; fi
fi
cd "$REPO"
exec "$PY" -m benchmarks.gpu_check "$@"
